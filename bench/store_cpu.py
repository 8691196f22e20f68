"""The store's CPU per message on the engine's side, without the broker, parsing or HTTP.

Drives the store as intake and the delivery loop do: intake batches of 64 messages (each with
the two per-batch corrections lookups), claims of 16, outcomes recorded 8 at a time, until
every message is delivered; prints the engine process's CPU time (user + system, every
thread: the store's writer thread included) and the wall time per message. Far steadier than
the end-to-end figures on a shared machine, and it shows the store's share alone.

    .venv/bin/python bench/store_cpu.py                         # SQLite file, 3,200 messages
    .venv/bin/python bench/store_cpu.py --store postgresql      # a database on 127.0.0.1:5432

To compare two builds, run it from each tree (a `git worktree` of the other build, with
PYTHONPATH set to it), alternately. Not a test: figures go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import StoreConfig
from engine.store import AcceptedEvent, AttemptRecord, Delivered, IntakeRecord, Store

if TYPE_CHECKING:  # not in builds before it (a comparison runs this from an older tree)
    from engine.store import History

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH, CLAIM, OUTCOMES, PATIENTS = 64, 16, 8, 200


def record(n: int) -> IntakeRecord:
    now = datetime.now(UTC)
    return IntakeRecord(
        source="mh",
        payload=(f"MSH|^~\\&|X|{n}|" + "x" * 900).encode(),
        received_at=now,
        format="hl7v2",
        message_key=f"k{n}",
        transport_id=f"t{n}",
        accepted=AcceptedEvent(
            event_id=f"ev-{n:08d}",
            kind="transfer",
            care_setting="mental_health",
            patient_key=f"nhs:{n % PATIENTS}",
            occurred_at=now,
            body='{"x": 1}' + "y" * 600,
            destinations=(("receiver", False),),
            stay_id="S1",
        ),
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def intake(store: Store, records: list[IntakeRecord]) -> None:
    keys = [r.accepted.patient_key for r in records if r.accepted is not None]
    if hasattr(store, "link_and_record"):  # the lookups inside the write

        def link(history: History) -> list[IntakeRecord]:
            history.patients_with_unmatched_cancels(keys)
            history.patients_with_discharges(keys)
            return records

        await store.link_and_record(link)
        return
    await store.patients_with_unmatched_cancels(keys)  # an older build: reads of their own
    await store.patients_with_discharges(keys)
    await store.record_intake(records)


async def run(url: str, messages: int) -> tuple[float, float]:
    store = await Store.open(StoreConfig(url=url))
    try:
        cpu, wall, sent = cpu_seconds(), time.perf_counter(), 0
        for first in range(0, messages, BATCH):
            await intake(store, [record(n) for n in range(first, min(first + BATCH, messages))])
            while claimed := await store.claim_due(
                ["receiver"], limit=CLAIM, lease=timedelta(seconds=60), owner="bench"
            ):
                for i in range(0, len(claimed), OUTCOMES):
                    now = datetime.now(UTC)
                    tried = [AttemptRecord(now, 3, "delivered", 200, None)]
                    await store.finish_deliveries(
                        [(c, tried, Delivered(now)) for c in claimed[i : i + OUTCOMES]]
                    )
                sent += len(claimed)
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
        if sent != messages:
            raise SystemExit(f"{sent} of {messages} delivered")
    finally:
        await store.close()
    return cpu / messages * 1e6, wall / messages * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--messages", type=int, default=3200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.repeat):
        if args.store == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                cpu, wall = await run(f"sqlite+aiosqlite:///{tmp}/cb.db", args.messages)
        else:
            name = f"cb_store_cpu_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect(PG)
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                base = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
                cpu, wall = await run(f"{base}/{name}", args.messages)
            finally:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                await admin.close()
        print(f"{args.store}: {cpu:,.0f} us CPU/msg, {wall:,.0f} us wall/msg", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
