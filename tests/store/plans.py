"""The query plan SQLite chooses for a statement, on a fresh store with every migration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.config import StoreConfig
from engine.store import Store


async def sqlite_plan(tmp_path: Path, statement: sa.Select[Any]) -> list[str]:
    """`EXPLAIN QUERY PLAN` of `statement` (its parameters bound already), one line per step."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    try:
        sql = statement.compile(
            dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        async with store.engine.connect() as conn:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            return [str(r[-1]) for r in rows]
    finally:
        await store.close()
