"""`mappings.fhir.plain`: a resource is called plainly valid only when the R4B models accept
it, and the nesting check's quick count refuses exactly what the walk refused.

The property test is the safety net of the proof: whatever a mutation makes of a real
resource, `plainly_valid` saying yes means the model validates it (a yes the model disagrees
with would let an invalid message through unrefused).
"""

from __future__ import annotations

import copy
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.patient import Patient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mappings.errors import MappingError
from mappings.fhir import plain
from mappings.fhir.inbound import map_fhir
from mappings.fhir.message import _MODELS
from mappings.fhir.plain import plainly_valid
from mappings.fhir.read import MAX_DEPTH, MAX_NODES, load_json
from mappings.profile import FeedProfile
from tests.json_paths import json_paths

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
PROFILE = FeedProfile(feed="plain")


def _resources() -> list[tuple[Any, dict[str, Any]]]:
    """(model, data) for every Bundle shell and every resource the mapping validates."""
    found: list[tuple[Any, dict[str, Any]]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        document = orjson.loads(path.read_bytes())
        if document["resourceType"] != "Bundle":
            found.append((_MODELS[document["resourceType"]], document))
            continue
        shell = dict(document)
        shell["entry"] = [
            {k: v for k, v in e.items() if k != "resource"} for e in document["entry"]
        ]
        found.append((Bundle, shell))
        for entry in document["entry"]:
            if entry["resource"]["resourceType"] in _MODELS:
                found.append((_MODELS[entry["resource"]["resourceType"]], entry["resource"]))
    return found


RESOURCES = _resources()


def _accepted(model: Any, data: object) -> bool:
    try:
        model.model_validate(data)
    except (ValidationError, KeyError, TypeError, ValueError, AttributeError, IndexError):
        return False
    return True


def test_the_fixtures_resources_are_plainly_valid() -> None:
    assert len(RESOURCES) > 15
    for model, data in RESOURCES:  # contained resources are left to the models
        assert plainly_valid(model, data) is ("contained" not in data), model.__name__


# --- what is not plain: the models decide, and their refusal is unchanged -----------------------


def _encounter() -> dict[str, Any]:
    return copy.deepcopy(next(d for m, d in RESOURCES if m is Encounter))


def _patient() -> dict[str, Any]:
    return copy.deepcopy(next(d for m, d in RESOURCES if m is Patient))


@pytest.mark.parametrize(
    ("model", "change"),
    [
        (Encounter, lambda e: e.pop("class")),  # pydantic's required field
        (Encounter, lambda e: e.update(status=None)),
        (Encounter, lambda e: e.update(identifier=[])),
        (Encounter, lambda e: e.update(identifier=[None])),
        (Encounter, lambda e: e.update(colour="blue")),
        (Encounter, lambda e: e.update(class_fhir=e["class"])),  # a field's Python name
        (Encounter, lambda e: e.update(resourceType="Patient")),
        (Encounter, lambda e: e.update(status="in  progress")),
        (Encounter, lambda e: e.update(contained=[{"resourceType": "Patient", "id": "p"}])),
        (Encounter, lambda e: e["period"].update(start="2026-13-01T00:00:00Z")),
        (
            Encounter,
            lambda e: e.update(extension=[{"url": "x", "valueString": "a", "valueCode": "b"}]),
        ),
        (
            Encounter,
            lambda e: e.update(extension=[{"valueString": "a"}]),
        ),  # fhir_core's required url
        (Patient, lambda p: p.update(deceasedBoolean=False, deceasedDateTime="2020-01-01")),
        (Patient, lambda p: p.update(_birthDate={})),  # a primitive's extension needs content
        (Patient, lambda p: p.update(birthDate="1.1.80")),
        (Patient, lambda p: p.update(name={"family": "X"})),  # one where an array is due
    ],
)
def test_what_is_not_plain_goes_to_the_models(model: Any, change: Any) -> None:
    data = _encounter() if model is Encounter else _patient()
    change(data)
    assert not plainly_valid(model, data)


def test_a_nested_resource_of_an_unknown_type_is_still_refused_at_its_path() -> None:
    bundle = orjson.loads((FIXTURES / "mh_discharge_message.json").read_bytes())
    encounter = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
    )
    encounter["contained"] = [{"resourceType": "Foo", "id": "x"}]
    with pytest.raises(MappingError) as caught:
        map_fhir(orjson.dumps(bundle), PROFILE)
    index = next(
        i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Encounter"
    )
    assert (caught.value.code, caught.value.location) == (
        "103",
        f"Bundle.entry[{index}].resource.contained[0].resourceType",
    )


# --- the property: yes only when the models say yes ---------------------------------------------

_VALUE: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            " ",
            "a b",
            "a  b",
            " x",
            "GET",
            "2026-02-30",
            "2026-02-02T10:30:00Z",
            "1.5",
            "urn:uuid:x",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["url", "valueString", "valueCode", "system", "code", "id", "extension", "x"]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


_KEYS = (
    "valueString", "valueCode", "valueBoolean", "valueReference", "deceasedBoolean",
    "deceasedDateTime", "multipleBirthInteger", "class", "status", "url", "contained",
    "fhir_comments", "resourceType", "resource_type", "extension", "id",
)  # fmt: skip


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_plainly_valid_only_when_the_model_accepts(data: st.DataObject) -> None:
    model, resource = data.draw(st.sampled_from(RESOURCES))
    resource = copy.deepcopy(resource)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(json_paths(resource)))
        if not path:
            continue
        *parents, last = path
        holder: Any = resource
        for part in parents:
            holder = holder[part]
        if data.draw(st.booleans()):
            del holder[last]
        elif isinstance(holder, dict) and data.draw(st.booleans()):
            key = data.draw(st.text(max_size=10) | st.sampled_from([f"_{last}", *_KEYS]))
            holder[key] = data.draw(_VALUE)
        else:
            holder[last] = data.draw(_VALUE)
    if plainly_valid(model, resource):
        assert _accepted(model, resource)


# --- the nesting limits ------------------------------------------------------------------------


def _nested(levels: int) -> dict[str, Any]:
    value: Any = "x"
    for _ in range(levels - 1):
        value = [value]
    return {"resourceType": "Bundle", "entry": value}


def test_nesting_up_to_the_limit_passes_and_one_more_is_refused() -> None:
    load_json(orjson.dumps(_nested(MAX_DEPTH)))
    with pytest.raises(MappingError, match="nested deeper than 64 levels"):
        load_json(orjson.dumps(_nested(MAX_DEPTH + 1)))


@pytest.mark.parametrize(
    ("entries", "reason"),
    [  # over both limits: the walk names the one it meets first, as it always did
        (lambda deep, many: [deep, many], "more than 500,000 JSON objects and arrays"),
        (lambda deep, many: [many, deep], "JSON nested deeper than 64 levels"),
    ],
)
def test_over_both_limits_the_same_one_is_named(entries: Any, reason: str) -> None:
    many: list[Any] = [{} for _ in range(MAX_NODES)]
    document = {"resourceType": "Bundle", "entry": entries(_nested(70), many)}
    with pytest.raises(MappingError) as caught:
        load_json(orjson.dumps(document))
    assert caught.value.reason == reason


def test_the_proof_runs_only_under_the_versions_it_was_checked_against() -> None:
    """A fhir_core or fhir.resources release may add a rule the proof does not know: under any
    version but the verified ones every resource goes to the models. This fails on a version
    bump until the proof is checked again and VERIFIED moved."""
    installed = {name: version(name) for name in plain.VERIFIED}
    assert installed == plain.VERIFIED, f"re-check mappings/fhir/plain.py under {installed}"
    assert plain.ENABLED


def test_off_under_another_version_every_resource_goes_to_the_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plain, "ENABLED", False)
    assert not plain.plainly_valid(Patient, {"resourceType": "Patient", "id": "p1"})
