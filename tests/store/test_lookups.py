"""Corrections' lookups of the history (`History`): their plans are bounded by the patient's
own events, never the whole history."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store.lookups import _STANDING, _STANDING_NO_STAY
from tests.store.plans import sqlite_plan

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
