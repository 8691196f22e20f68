"""Every care event the HL7 v2 mapping makes is one the strict model accepts as it is.

The mapping builds its models by validating keyword arguments; a speed change that builds
them any other way (``model_construct``, a factory that skips validation) must still give
events that the model, validating strictly (no coercion), takes back unchanged. This checks
that on the golden fixtures (each with its profile), the fuzz seeds and every corpus file
that maps, and on seeded mutants of the fixtures, which reach the warning and fallback paths.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import yaml

from mappings.errors import MappingError
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent
from mappings.profile import FeedProfile

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "hl7v2"
CORPUS = Path(
    os.environ.get("CAREBRIDGE_CORPUS") or TESTS.parents[1] / "shared" / "corpus"
)  # fmt: skip
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}


def _inputs() -> list[bytes]:
    found = [p.read_bytes() for p in sorted(FIXTURES.glob("*.hl7"))]
    found += [p.read_bytes() for p in sorted((TESTS / "fuzz" / "corpus").glob("hl7v2_*/*"))]
    if (CORPUS / "hl7v2").is_dir():
        found += [p.read_bytes() for p in sorted((CORPUS / "hl7v2").rglob("*")) if p.is_file()]
    return found


def _mutants(seeds: list[bytes], count: int) -> list[bytes]:
    rng = random.Random(20261205)
    inserts = (b"|", b"^", b"~", b"&", b'""', b"\r", b"0", b"9", b"+0100", b"20261025013000")
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            if rng.random() < 0.4:
                del data[at : at + rng.randint(1, 3)]
            else:
                data[at:at] = rng.choice(inserts)
        out.append(bytes(data))
    return out


def test_every_mapped_event_validates_strictly_unchanged() -> None:
    seeds = _inputs()
    mapped = 0
    for raw in seeds + _mutants(seeds, 1500):
        for profile in PROFILES.values():
            try:
                event = map_hl7v2(raw, profile)
            except MappingError:
                continue
            mapped += 1
            again = CareEvent.model_validate(event.model_dump(), strict=True)
            assert again == event
            assert repr(again) == repr(event)  # the same values of the same types
            assert CareEvent.model_validate_json(event.model_dump_json()) == event
    assert mapped > 1000


@pytest.mark.skipif(not (CORPUS / "hl7v2").is_dir(), reason=f"no corpus at {CORPUS}")
def test_the_corpus_is_in_the_strict_check() -> None:
    assert len(_inputs()) > 80
