"""Corrections' lookups of the history (`History`): their plans are bounded by the patient's
own events, never the whole history."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.config import StoreConfig
from engine.store import Store
from engine.store.lookups import _STANDING, _STANDING_NO_STAY

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("query", [_STANDING, _STANDING_NO_STAY], ids=["stay", "no-stay"])
async def test_sqlite_finds_a_discharges_cancel_by_index_not_by_reading_every_event(
    tmp_path: Path, query: sa.Select[str]
) -> None:
    """ "Has this discharge been cancelled?" is one seek of ix_events_corrects per discharge of
    the patient's stay: without it, SQLite read every event ever kept for each of them."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    try:
        params = {"patient_key": "nhs:9434765919", "stay_id": "S1"}
        sql = query.params(**params).compile(
            dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        async with store.engine.connect() as conn:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            plan = [str(r[-1]) for r in rows]
    finally:
        await store.close()
    assert any("SEARCH cancel USING INDEX ix_events_corrects" in line for line in plan), plan
    assert not any(line.startswith("SCAN") for line in plan), plan
