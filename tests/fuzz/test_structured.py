"""Structured fuzzing with Hypothesis, where byte-level atheris mutations seldom reach: valid
JSON and well-formed HL7 segments whose *values* are hostile, so the mapping past the readers
is exercised on every example. Each example goes through the atheris targets' own
`TestOneInput`, so a failure here is a crash by the same definition (tests/fuzz/targets/).
Deterministic (derandomized): a failure reproduces, then becomes a regression test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import fhir_mapping, hl7_ack, hl7v2_mapping, hl7v2_reader
from tests.json_paths import json_paths

CORPUS = Path(__file__).parent / "corpus"
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "urn:uuid:", "#p1", "Patient/p1", "2026-02-30", "9990000026", "A03"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _replace(node: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replace(node[head], rest, value, delete)
    return copy


FHIR_SEEDS = [
    json.loads((CORPUS / "fhir_mapping" / f"{name}.json").read_text())
    for name in ("discharge_message", "admission_message", "transaction_bundle", "encounter_alone")
]


@SETTINGS
@given(data=st.data())
def test_fhir_with_hostile_values_in_a_valid_message(data: st.DataObject) -> None:
    document = data.draw(st.sampled_from(FHIR_SEEDS))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(json_paths(document)))
        delete = bool(path) and data.draw(st.booleans())
        document = _replace(document, path, data.draw(_JSON), delete)
    fhir_mapping.TestOneInput(json.dumps(document, ensure_ascii=False).encode())


HL7_SEEDS = [
    (CORPUS / "hl7v2_mapping" / name).read_bytes().decode("latin-1")
    for name in ("a03_discharge.hl7", "a01_local_fields.hl7", "a40_merge.hl7", "a02_transfer.hl7")
]
_HL7_TEXT = st.lists(
    st.sampled_from([*'|^~\\&\r\n"xX0AF.sp9 é', "\\X0D\\", "\\.sp5\\", "\u2028", '""'])
    | st.characters(codec="utf-8"),
    max_size=30,
).map("".join)


@SETTINGS
@given(data=st.data())
def test_hl7_with_hostile_values_in_well_formed_segments(data: st.DataObject) -> None:
    segments = data.draw(st.sampled_from(HL7_SEEDS)).strip("\r").split("\r")
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(segments) - 1))
        fields = segments[index].split("|")
        number = data.draw(st.integers(1 if index else 2, max(len(fields), 3)))
        fields += [""] * (number + 1 - len(fields))
        fields[number] = data.draw(_HL7_TEXT)
        segments[index] = "|".join(fields)
    raw = ("\r".join(segments) + "\r").encode("utf-8")
    hl7v2_reader.TestOneInput(raw)
    hl7v2_mapping.TestOneInput(raw)
    hl7_ack.TestOneInput(bytes([data.draw(st.integers(0, 255))]) + raw + b"\x00CB1")
