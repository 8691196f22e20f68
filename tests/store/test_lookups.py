"""Corrections' lookups of the history (`History`): their plans are bounded by the patient's
own events, never the whole history."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store import IntakeRecord, Store
from engine.store.lookups import _STANDING, _STANDING_NO_STAY
from tests.store.plans import sqlite_plan
from tests.store.test_store import record

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("query", [_STANDING, _STANDING_NO_STAY], ids=["stay", "no-stay"])
async def test_sqlite_finds_a_discharges_cancel_by_index_not_by_reading_every_event(
    tmp_path: Path, query: sa.Select[str]
) -> None:
    """ "Has this discharge been cancelled?" is one seek of ix_events_corrects per discharge of
    the patient's stay: without it, SQLite read every event ever kept for each of them."""
    plan = await sqlite_plan(tmp_path, query.params(patient_key="nhs:9434765919", stay_id="S1"))
    assert any("SEARCH cancel USING INDEX ix_events_corrects" in line for line in plan), plan
    assert not any(line.startswith("SCAN") for line in plan), plan


def _of_kind(key: str, patient: str, kind: str) -> IntakeRecord:
    made = record(key, patient=patient)
    assert made.accepted is not None
    return dataclasses.replace(made, accepted=dataclasses.replace(made.accepted, kind=kind))


async def test_the_batch_lookups_answer_for_the_patients_asked_and_no_others(store: Store) -> None:
    # One statement a batch, on each store its own way (an expanded IN on SQLite, an array on
    # PostgreSQL): the same answers.
    await store.record_intake([
        _of_kind("m1", "nhs:1", "discharge"), _of_kind("m2", "nhs:2", "cancel_discharge"),
        _of_kind("m3", "nhs:3", "admission"), _of_kind("m4", "nhs:5", "discharge"),
        _of_kind("m5", "nhs:5", "cancel_admission")])  # fmt: skip
    asked = ["nhs:1", "nhs:2", "nhs:3", "nhs:4", "nhs:1"]
    assert await store.patients_with_discharges(asked) == {"nhs:1"}
    assert await store.patients_with_unmatched_cancels(asked) == {"nhs:2"}
    assert await store.patients_with_discharges([*asked, "nhs:5"]) == {"nhs:1", "nhs:5"}
    assert await store.patients_with_unmatched_cancels(["nhs:5", "nhs:1"]) == {"nhs:5"}
    assert await store.patients_with_discharges([]) == set()


async def test_a_batch_finds_each_sources_accepted_keys_and_only_its_own(store: Store) -> None:
    first = [record(f"k{i}", patient=f"nhs:{i}") for i in range(5)]
    other = record("k9", patient="nhs:9")
    assert other.accepted is not None
    accepted = dataclasses.replace(other.accepted, event_id="ev-other")
    other = dataclasses.replace(other, source="other-trust", accepted=accepted)
    await store.record_intake([*first, other])
    again = [
        first[1],  # the same bytes: a duplicate
        dataclasses.replace(first[3], payload=b"changed"),  # another message: refused
        record("k7", patient="nhs:7"),  # new
        dataclasses.replace(record("k9", patient="nhs:9"), payload=b"from mh-trust"),  # new here
    ]
    results = await store.record_intake(again)
    assert [r.status for r in results] == ["duplicate", "rejected", "accepted", "accepted"]
