"""Does the engine's hot path slow down as history grows? (issue 16 point 4)

Seeds a store with N past messages, their events and delivered deliveries (bulk inserts: a
million in about a minute on SQLite), then times every query intake and the delivery loop run
per batch, on the empty store and on the seeded one, and prints each query's plan.

    .venv/bin/python bench/history.py                       # SQLite, 1,000,000 messages
    .venv/bin/python bench/history.py --rows 200000 --postgres   # PostgreSQL (127.0.0.1:5432)
    .venv/bin/python bench/history.py --backlog 1000,10000,60000  # claim cost against a backlog

A query that reads history (rather than an index range of the few rows it needs) shows as a
plan with a SCAN / Seq Scan of a big table and a ratio that grows with N. `--backlog` times a
claim against backlogs of pending deliveries instead (over `--patients` patients, then one
patient a delivery). End-to-end throughput against history: bench/history_e2e.py. Not a test:
figures go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import StoreConfig
from engine.store import AcceptedEvent, IntakeRecord, Store
from engine.store.intake import accepted_keys_query
from engine.store.outbox import _due
from engine.store.pruning import _eligible
from engine.store.schema import attempts, deliveries, events, messages

DESTINATIONS: tuple[str, ...] = ("gp", "team")
T0 = datetime(2025, 1, 1, tzinfo=UTC)  # history_e2e.py moves it within retention
PG_ADMIN = os.environ.get("CAREBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _rows(start: int, count: int) -> tuple[list[dict[str, Any]], ...]:
    """`count` past messages from id `start`: accepted discharges, each delivered to two
    destinations with one attempt; five messages a patient."""
    msgs, evs, dels, atts = [], [], [], []
    for n in range(start, start + count):
        at = T0 + timedelta(seconds=n)
        patient = patient_of(n)
        event_id = f"ev-hist{n:010d}"
        body = json.dumps({"event_id": event_id, "kind": "discharge"})
        msgs.append({"id": n, "source": "history", "message_key": f"H{n}", "format": "hl7v2",
                     "status": "accepted", "payload": b"MSH|^~\\&|history", "received_at": at,
                     "payload_sha256": hashlib.sha256(str(n).encode()).hexdigest(),
                     "committed_at": at, "event_id": event_id, "event_kind": "discharge",
                     "patient_key": patient})  # fmt: skip
        evs.append({"event_id": event_id, "message_id": n, "source": "history",
                    "kind": "discharge", "care_setting": "mental_health", "patient_key": patient,
                    "occurred_at": at, "received_at": at, "body": body,
                    "stay_id": f"S{(n - FIRST_ID) // 5}"})  # fmt: skip
        for k, dest in enumerate(DESTINATIONS):
            d_id = 2 * n + k
            dels.append({"id": d_id, "event_id": event_id, "destination": dest,
                         "patient_key": patient, "status": "delivered",
                         "idempotency_key": f"{event_id}.{dest}", "attempts": 1,
                         "created_at": at, "next_attempt_at": at, "delivered_at": at,
                         "hold": False})  # fmt: skip
            atts.append({"delivery_id": d_id, "started_at": at, "duration_ms": 5,
                         "outcome": "delivered", "status_code": 200})  # fmt: skip
    return msgs, evs, dels, atts


FIRST_ID = 1
"""Seeded rows take ids from here; the working set comes after them, as new traffic does."""


def _history_patient(n: int) -> str:
    return f"nhs:hist{(n - FIRST_ID) // 5:08d}"


patient_of: Callable[[int], str] = _history_patient
"""Whose past message `n` was: five a patient (bench/history_e2e.py uses its own patients)."""


async def seed(store: Store, rows: int, *, analyze: bool, chunk: int = 20_000) -> float:
    """Bulk-insert `rows` past messages (with events, deliveries and attempts)."""
    started = time.perf_counter()
    end = FIRST_ID + rows
    for start in range(FIRST_ID, end, chunk):
        msgs, evs, dels, atts = _rows(start, min(chunk, end - start))
        async with store.engine.begin() as conn:
            for table, values in ((messages, msgs), (events, evs), (deliveries, dels),
                                  (attempts, atts)):  # fmt: skip
                await conn.execute(sa.insert(table), values)
    async with store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            for name in ("messages", "deliveries", "attempts"):
                await conn.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"))  # fmt: skip
            await conn.execute(sa.text("ANALYZE"))  # as autovacuum would
        elif analyze:
            await conn.execute(sa.text("ANALYZE"))
    return time.perf_counter() - started


def batch(round_: int, size: int = 50) -> list[IntakeRecord]:
    """New messages as intake writes them: half for patients with history, half new."""
    records = []
    for i in range(size):
        patient = f"nhs:hist{i * 7:08d}" if i % 2 else f"nhs:new{round_:04d}{i:03d}"
        key = f"N{round_}-{i}-{uuid.uuid4().hex[:6]}"
        body = json.dumps({"event_id": f"ev-{key}", "kind": "discharge"})
        records.append(IntakeRecord(
            source="history", payload=f"MSH|{key}".encode(), received_at=datetime.now(UTC),
            format="hl7v2", message_key=key,
            accepted=AcceptedEvent(event_id=f"ev-{key}", kind="discharge",
                                   care_setting="mental_health", patient_key=patient,
                                   occurred_at=datetime.now(UTC), body=body,
                                   stay_id=f"S{i}", destinations=tuple((d, False)
                                                                       for d in DESTINATIONS)),
        ))  # fmt: skip
    return records


Probe = Callable[[Store, int], Awaitable[None]]


def _accepted_keys_query(keys: Sequence[str]) -> sa.Select[Any]:
    return accepted_keys_query("history", keys)


async def _select(store: Store, query: sa.Select[Any]) -> None:
    async with store.reading() as conn:
        (await conn.execute(query)).all()


def probes() -> dict[str, tuple[Probe, Callable[[], sa.Select[Any]] | None]]:
    """Each hot-path query: how to run it once, and its SELECT (for the plan)."""
    keys = [f"H{FIRST_ID + n}" for n in range(1, 100, 2)] + [f"missing-{n}" for n in range(50)]
    patients = [f"nhs:hist{n * 7:08d}" for n in range(50)]

    async def accepted_keys(store: Store, _round: int) -> None:
        await _select(store, _accepted_keys_query(keys))

    async def write_batch(store: Store, round_: int) -> None:
        await store.record_intake(batch(round_))

    async def find_original(store: Store, _round: int) -> None:
        for n, patient in enumerate(patients[:10]):
            await store.find_original(patient, f"S{n * 7 // 5}", "discharge")

    async def unmatched_cancels(store: Store, _round: int) -> None:
        await store.patients_with_unmatched_cancels(patients)

    async def discharges(store: Store, _round: int) -> None:
        await store.patients_with_discharges(patients)

    async def due(store: Store, _round: int) -> None:
        await _select(store, _due(DESTINATIONS[0], 200, datetime.now(UTC)))

    async def retention(store: Store, _round: int) -> None:
        await _select(store, _eligible(T0 - timedelta(days=1), 200))

    async def retention_old(store: Store, _round: int) -> None:
        await _select(store, _eligible(T0 + timedelta(hours=1), 200))

    return {
        "intake: accepted keys of a batch (100 keys)": (
            accepted_keys, lambda: _accepted_keys_query(keys)),
        "intake: write a batch of 50 (2 deliveries each)": (write_batch, None),
        "corrections: find_original x10": (find_original, None),
        "corrections: unmatched cancels (50 patients)": (unmatched_cancels, None),
        "corrections: discharges on record (50 patients)": (discharges, None),
        "delivery: the claim's due query": (
            due, lambda: _due(DESTINATIONS[0], 200, datetime.now(UTC))),
        "retention: settled messages past the cut-off (none)": (
            retention, lambda: _eligible(T0 - timedelta(days=1), 200)),
        "retention: 200 settled messages past the cut-off": (
            retention_old, lambda: _eligible(T0 + timedelta(hours=1), 200)),
    }  # fmt: skip


async def measure(store: Store, repeat: int) -> dict[str, float]:
    """Median milliseconds of each probe over `repeat` runs."""
    found = {}
    for name, (probe, _query) in probes().items():
        times = []
        for r in range(repeat):
            started = time.perf_counter()
            await probe(store, r + int(time.time() * 1000) % 100_000 * 1000)
            times.append((time.perf_counter() - started) * 1000)
        found[name] = statistics.median(times)
    return found


async def plans(store: Store) -> dict[str, list[str]]:
    out = {}
    postgres = store.engine.dialect.name == "postgresql"
    for name, (_probe, query) in probes().items():
        if query is None:
            continue
        async with store.reading() as conn:
            compiled = query().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = (await conn.exec_driver_sql(prefix + str(compiled))).all()
        out[name] = [str(r[0] if postgres else r[-1]) for r in rows]
    return out


async def open_store(postgres: bool, folder: Path) -> tuple[Store, Callable[[], Awaitable[None]]]:
    if not postgres:
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{folder / 'history.db'}"))
        return store, store.close
    name = f"cb_history_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    store = await Store.open(StoreConfig(url=f"{base}/{name}"))

    async def close() -> None:
        await store.close()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    return store, close


def _backlog_rows(count: int, n_patients: int) -> tuple[list[dict[str, Any]], ...]:
    """`count` pending deliveries to DESTINATIONS[0], one per message, for `n_patients`
    interleaved (message n is patient n mod n_patients's), all due: a backlog."""
    msgs, evs, dels = [], [], []
    for n in range(FIRST_ID, FIRST_ID + count):
        at = T0 + timedelta(seconds=n)
        patient, event_id = f"nhs:back{n % n_patients:08d}", f"ev-back{n:010d}"
        msgs.append({"id": n, "source": "backlog", "message_key": f"B{n}", "format": "hl7v2",
                     "status": "accepted", "payload": b"MSH|^~\\&|backlog", "received_at": at,
                     "payload_sha256": f"{n:064d}", "committed_at": at, "event_id": event_id,
                     "event_kind": "discharge", "patient_key": patient})  # fmt: skip
        evs.append({"event_id": event_id, "message_id": n, "source": "backlog",
                    "kind": "discharge", "care_setting": "mental_health", "patient_key": patient,
                    "occurred_at": at, "received_at": at, "body": "{}"})  # fmt: skip
        dels.append({"id": n, "event_id": event_id, "destination": DESTINATIONS[0],
                     "patient_key": patient, "status": "pending",
                     "idempotency_key": f"{event_id}.{DESTINATIONS[0]}", "attempts": 0,
                     "created_at": at, "next_attempt_at": at, "hold": False})  # fmt: skip
    return msgs, evs, dels


def _due_query(limit: int) -> sa.Select[Any]:
    """The claim's due query; also as it was before it took one destination (to compare)."""
    if "destinations" in inspect.signature(_due).parameters:
        return _due([DESTINATIONS[0]], limit, datetime.now(UTC))  # type: ignore[arg-type]
    return _due(DESTINATIONS[0], limit, datetime.now(UTC))


async def claim_cost(store: Store, size: int, n_patients: int, repeat: int) -> tuple[float, ...]:
    """Median ms of the due query alone and of a whole claim (the query, the leases, the rows,
    the commit) of 16 (what the delivery loop asks for with its default 32 slots), with a
    backlog of `size` due deliveries and 32 heads already in flight; each claim's leases are
    given back, so every claim sees the same backlog."""
    async with store.engine.begin() as conn:
        for table, values in zip((messages, events, deliveries),
                                 _backlog_rows(size, n_patients), strict=True):  # fmt: skip
            await conn.execute(sa.insert(table), values)
    lease = timedelta(minutes=10)
    await store.claim_due([DESTINATIONS[0]], limit=32, lease=lease, owner="in-flight")
    queries, claims = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        await _select(store, _due_query(16))
        queries.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        got = await store.claim_due([DESTINATIONS[0]], limit=16, lease=lease, owner="bench")
        claims.append((time.perf_counter() - started) * 1000)
        await store.release([c.id for c in got], owner="bench")
    return statistics.median(queries), statistics.median(claims)


async def backlog(args: argparse.Namespace) -> int:
    """Claim cost against the backlog: for each size, a fresh store."""
    print(f"a claim of 16 with 32 in flight, ms (median of {args.repeat}): the due query alone "
          f"and the whole claim; the backlog over {args.patients} patients, then one patient "
          "a delivery")  # fmt: skip
    print(f"{'backlog':>18} {'query':>9} {'claim':>9} {'query':>9} {'claim':>9}")
    with tempfile.TemporaryDirectory(prefix="carebridge-backlog-") as tmp:
        for size in args.backlog:
            row: list[float] = []
            for n_patients in (args.patients, size):
                folder = Path(tmp) / f"{size}-{n_patients}"
                store, close = await open_store(args.postgres, folder)
                try:
                    row.extend(await claim_cost(store, size, n_patients, args.repeat))
                finally:
                    await close()
            print(f"{size:>10,} pending " + " ".join(f"{ms:9.2f}" for ms in row))
    return 0


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="carebridge-history-") as tmp:
        store, close = await open_store(args.postgres, Path(tmp) / "empty")
        try:
            await store.record_intake(batch(0))  # a working set: pending deliveries to claim
            empty = await measure(store, args.repeat)
        finally:
            await close()
        store, close = await open_store(args.postgres, Path(tmp) / "history")
        try:
            seconds = await seed(store, args.rows, analyze=args.analyze)
            await store.record_intake(batch(0))  # the same working set, after the history
            full = await measure(store, args.repeat)
            shown = await plans(store)
        finally:
            await close()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{backend}: seeded {args.rows:,} messages, {args.rows:,} events, "
          f"{2 * args.rows:,} deliveries and attempts in {seconds:.0f} s\n")  # fmt: skip
    print(f"{'query (median of ' + str(args.repeat) + ')':52} {'empty ms':>9} "
          f"{'history ms':>11} {'ratio':>6}")  # fmt: skip
    for name in empty:
        ratio = full[name] / empty[name] if empty[name] else float("nan")
        print(f"{name:52} {empty[name]:9.2f} {full[name]:11.2f} {ratio:6.2f}")
    for name, lines in shown.items():
        print(f"\nplan: {name}")
        for line in lines:
            print(f"  {line}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=1_000_000, help="past messages (1,000,000)")
    ap.add_argument("--repeat", type=int, default=20, help="runs of each query (20)")
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL at CAREBRIDGE_TEST_PG")
    ap.add_argument(
        "--analyze",
        action="store_true",
        help="SQLite: ANALYZE after seeding (the engine never does; PostgreSQL always is)",
    )
    ap.add_argument(
        "--backlog",
        type=lambda text: [int(n) for n in text.split(",")],
        help="instead: the claim's cost against backlogs of these sizes (e.g. 1000,10000,60000)",
    )
    ap.add_argument("--patients", type=int, default=200, help="--backlog: its patients (200)")
    args = ap.parse_args(argv)
    return asyncio.run(backlog(args) if args.backlog else run(args))


if __name__ == "__main__":
    sys.exit(main())
