"""The HL7 v2 mapping shares the models of short, repeating values (wards, beds, consultants, a
feed's local codes) between messages; a long text is never kept past its message, so a sender
cannot fill the engine's memory through the caches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mappings.hl7v2 import types
from mappings.hl7v2.inbound import map_hl7v2
from mappings.profile import FeedProfile
from tests.adt_factory import adt, patients

PROFILE = FeedProfile(feed="shared-models-test")
WHEN = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def _caches() -> list[dict[tuple[str | None, ...], object]]:
    return [types._LOCATIONS, types._CLINICIANS, types._LOCAL_CODINGS]  # type: ignore[list-item]


def _kept_chars() -> int:
    return sum(len(text) for cache in _caches() for key in cache for text in key if text)


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    for cache in _caches():
        cache.clear()


def test_a_ward_and_a_consultant_seen_again_are_the_same_models() -> None:
    patient = patients(1, run="S")[0]
    first = map_hl7v2(adt("A01", patient, "S1", WHEN), PROFILE)
    second = map_hl7v2(adt("A01", patient, "S2", WHEN), PROFILE)
    assert first.stay is not None
    assert second.stay is not None
    assert first.stay.location is second.stay.location
    assert first.stay.responsible_clinician is second.stay.responsible_clinician


def test_long_texts_are_not_kept_past_their_message() -> None:
    """Messages each with a different 20,000-character ward description (PV1-3.9), consultant
    name (PV1-9.2) and local code (PV1-10): they map as before, and the caches keep none of
    it (before the limit, 50 such messages left 2 million characters in them)."""
    patient = patients(1, run="L")[0]
    for n in range(50):
        long = f"{n:05d}" + "x" * 20_000
        raw = (
            adt("A01", patient, f"L{n}", WHEN)
            .replace(b"RXT^WARD1^BED1^RXT01", f"RXT^WARD1^BED1^RXT01^^^^^{long}".encode())
            .replace(b"^CONSULTANT^", f"^{long}^".encode())
            .replace(b"|710|", f"|{long}|".encode())
        )
        event = map_hl7v2(raw, PROFILE)
        assert event.stay is not None
        assert event.stay.location is not None
        assert event.stay.location.description == long
    assert _kept_chars() < 10_000
