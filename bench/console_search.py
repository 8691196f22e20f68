"""Console search latency on a large message log: p95 of `engine.store.console_search.search` per
filter, on SQLite and PostgreSQL.

    seed N messages (+ events and deliveries for a fraction) ─► temp SQLite file and temp
    PostgreSQL database, migrated by `Store.open` (the real schema and indexes)
    ─► for each filter type, `--runs` searches with different values (first page, 50 rows,
       as the console asks) ─► p50 / p95 / max per filter, and p95 over all

The log is shaped like a trust's: 8 sources of unequal volume; about 94% accepted, 4%
rejected, 2% duplicates; 200k patients with skewed traffic (85% keyed by NHS number, the rest
by a local number ``local:<source>:<authority>:<id>``); event kinds weighted as ADT traffic is;
received times over 90 days in id order; 35% of accepted messages have 1 or 2 deliveries
(90% delivered, 6% pending, 3% dead, 1% held).

Seeding: SQLite by `executemany` in chunks of 10,000 on one transaction per chunk; PostgreSQL by
COPY (`asyncpg.copy_records_to_table`), then ANALYZE (what autovacuum does on its own). SQLite is
measured as the engine leaves it (no ANALYZE), unless `--analyze-sqlite`.

Run from the repository root:
    .venv/bin/python bench/console_search.py                 # one million messages
    .venv/bin/python bench/console_search.py --size 100000   # smaller
    .venv/bin/python bench/console_search.py --only sqlite
PostgreSQL is reached at postgresql://postgres@127.0.0.1:5432/postgres (``--pg``); the temp
database and file are dropped at the end. A script, not a test: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import StoreConfig
from engine.store import Store, console_search
from engine.store.console_search import SearchFilter

CHUNK = 10_000
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
SOURCES = ("mh-trust", "acute", "community", "ae", "maternity", "outpatients", "gp-feed", "lab")
SOURCE_WEIGHTS = (30, 25, 15, 10, 8, 6, 4, 2)
KINDS = ("admission", "transfer", "discharge", "update_patient", "pre_admission",
         "cancel_admission", "cancel_discharge", "merge", "leave_start", "leave_end")  # fmt: skip
KIND_WEIGHTS = (20, 30, 18, 20, 4, 2, 2, 1, 2, 1)
DESTINATIONS = ("gp", "team", "pas", "fhir-repo", "bus")
DEST_WEIGHTS = (35, 30, 15, 15, 5)
PAYLOAD = (
    "MSH|^~\\&|PAS|RXX|CAREBRIDGE|NHS|20260101090000||ADT^A01^ADT_A01|{key}|P|2.4\r"
    "EVN|A01|20260101090000\rPID|1||{nhs}^^^NHS^NH~L{n}^^^RXX^MR||ZZTEST^PATIENT||19800101|2\r"
    "PV1|1|I|RXX^WARD1^BED1||||C1234567^CONSULTANT^ANNE\r"
)


def nhs_number(n: int) -> str:
    """A valid (mod 11) synthetic NHS number starting 999 (never issued)."""
    while True:
        base = f"999{n % 10**6:06d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(base))
        check = 11 - total % 11
        if check == 11:
            return base + "0"
        if check != 10:
            return base + str(check)
        n += 1


@dataclass
class Seed:
    """The rows, generated once and loaded into each backend; plus values to search for."""

    messages: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    nhs: list[str] = field(default_factory=list)
    local: list[tuple[str, str]] = field(default_factory=list)
    """(source, local number) of local-keyed patients that have messages."""
    control_ids: list[str] = field(default_factory=list)


MESSAGE_COLUMNS = ("id", "source", "message_key", "format", "status", "reason",
                   "error_location", "error_code", "payload", "payload_sha256", "received_at",
                   "committed_at", "transport_id", "duplicate_of", "event_id", "event_kind",
                   "patient_key")  # fmt: skip
EVENT_COLUMNS = ("event_id", "message_id", "source", "kind", "care_setting", "patient_key",
                 "occurred_at", "received_at", "body")  # fmt: skip
DELIVERY_COLUMNS = ("id", "event_id", "destination", "patient_key", "status", "idempotency_key",
                    "attempts", "created_at", "next_attempt_at", "delivered_at", "last_error",
                    "hold", "held_at", "held_by")  # fmt: skip


def generate(size: int, rng: random.Random) -> Seed:
    seed = Seed()
    patients = max(size // 5, 10)
    sources = rng.choices(SOURCES, SOURCE_WEIGHTS, k=size)
    kinds = rng.choices(KINDS, KIND_WEIGHTS, k=size)
    statuses = rng.choices(("accepted", "rejected", "duplicate"), (94, 4, 2), k=size)
    step = SPAN / size
    delivery_id = 0
    last_accepted: dict[str, int] = {}
    for i in range(size):
        mid = i + 1
        source = sources[i]
        # Skewed traffic: a few patients have many messages (long stays, many transfers).
        p = int(patients * rng.random() ** 2)
        if p % 7 == 0:
            local_id = f"L{p:07d}"
            key = f"local:{source}:RXX:{local_id}"
            if len(seed.local) < 2000 and rng.random() < 0.01:
                seed.local.append((source, local_id))
        else:
            nhs = nhs_number(p)
            key = f"nhs:{nhs}"
            if len(seed.nhs) < 2000 and rng.random() < 0.01:
                seed.nhs.append(nhs)
        at = START + step * i
        control = f"{source[:3].upper()}{mid:09d}"
        status = statuses[i]
        payload = PAYLOAD.format(key=control, nhs=key[-10:], n=p).encode()
        digest = hashlib.sha256(payload).hexdigest()
        event_id = None
        reason = location = code = None
        duplicate_of = None
        message_key: str | None = control
        if status == "accepted":
            event_id = f"ev{mid:012d}"
            last_accepted[source] = mid
        elif status == "rejected":
            reason, location, code = "PID-3: no patient identifier", "PID-3", "101"
        else:
            message_key = None
            duplicate_of = last_accepted.get(source)
        if rng.random() < 0.002 and status == "accepted":
            seed.control_ids.append(control)
        seed.messages.append((
            mid, source, message_key, "hl7v2", status, reason, location, code, payload, digest,
            at, at, None, duplicate_of, event_id,
            None if status == "rejected" else kinds[i], None if status == "rejected" else key,
        ))  # fmt: skip
        if status == "accepted" and rng.random() < 0.35:
            seed.events.append((event_id, mid, source, kinds[i], "mental_health", key, at, at,
                                "{}"))  # fmt: skip
            chosen = set(rng.choices(DESTINATIONS, DEST_WEIGHTS, k=rng.choice((1, 1, 2))))
            for dest in sorted(chosen):
                delivery_id += 1
                state = rng.choices(("delivered", "pending", "dead", "held"), (90, 6, 3, 1))[0]
                held = state == "held"
                seed.deliveries.append((
                    delivery_id, event_id, dest, key, "pending" if held else state,
                    f"{event_id}.{dest}", 1, at, at, at if state == "delivered" else None,
                    "HTTP 422" if state == "dead" else None, False,
                    at if held else None, "olive" if held else None,
                ))  # fmt: skip
    return seed


def chunks(rows: Sequence[tuple[Any, ...]]) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


# ---- loading --------------------------------------------------------------------------------


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load_sqlite(path: Path, seed: Seed, analyze: bool) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    for table, columns, rows in (
        ("messages", MESSAGE_COLUMNS, seed.messages),
        ("events", EVENT_COLUMNS, seed.events),
        ("deliveries", DELIVERY_COLUMNS, seed.deliveries),
    ):
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for chunk in chunks(rows):
            conn.executemany(sql, [tuple(_sqlite_value(v) for v in row) for row in chunk])
            conn.commit()
    if analyze:
        conn.execute("ANALYZE")
        conn.commit()
    conn.close()


async def load_postgres(dsn: str, seed: Seed) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for table, columns, rows in (
            ("messages", MESSAGE_COLUMNS, seed.messages),
            ("events", EVENT_COLUMNS, seed.events),
            ("deliveries", DELIVERY_COLUMNS, seed.deliveries),
        ):
            for chunk in chunks(rows):
                await conn.copy_records_to_table(table, records=chunk, columns=list(columns))
        for table in ("messages", "deliveries"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# ---- measuring ------------------------------------------------------------------------------


def filters(seed: Seed, runs: int, rng: random.Random) -> dict[str, list[SearchFilter]]:
    def some(values: Sequence[Any]) -> list[Any]:
        return [rng.choice(values) for _ in range(runs)]

    def window() -> SearchFilter:
        since = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds() - 86400))
        return SearchFilter(since=since, until=since + timedelta(days=1))

    return {
        "nhs number": [SearchFilter(patient=n) for n in some(seed.nhs)],
        "local id + source": [SearchFilter(patient=i, source=s) for s, i in some(seed.local)],
        "local id alone": [SearchFilter(patient=i) for _s, i in some(seed.local)],
        "control id": [SearchFilter(control_id=c) for c in some(seed.control_ids)],
        "source": [SearchFilter(source=s) for s in some(SOURCES)],
        "status": [SearchFilter(status=s) for s in some(("accepted", "rejected", "duplicate"))],
        "kind": [SearchFilter(kind=k) for k in some(KINDS)],
        "time range (1 day)": [window() for _ in range(runs)],
        "destination": [SearchFilter(destination=d) for d in some(DESTINATIONS)],
        "delivery status": [
            SearchFilter(delivery_status=s) for s in some(("pending", "dead", "held"))
        ],
        "source + status": [SearchFilter(source=s, status="rejected") for s in some(SOURCES)],
    }


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(store: Store, cases: dict[str, list[SearchFilter]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, fs in cases.items():
        await console_search.search(store, fs[0], limit=50)  # warm the pool and the cache
        times = []
        for f in fs:
            t0 = time.perf_counter()
            await console_search.search(store, f, limit=50)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = times
    return out


def report(backend: str, results: dict[str, list[float]], target: float) -> None:
    print(f"\n{backend}: search latency, first page of 50 (ms)")
    print(f"  {'filter':<22} {'p50':>8} {'p95':>8} {'max':>8}")
    every: list[float] = []
    for name, times in results.items():
        every += times
        flag = "" if pct(times, 95) < target else "  over target"
        print(f"  {name:<22} {statistics.median(times):8.1f} {pct(times, 95):8.1f} "
              f"{max(times):8.1f}{flag}")  # fmt: skip
    print(f"  {'overall':<22} {statistics.median(every):8.1f} {pct(every, 95):8.1f} "
          f"{max(every):8.1f}")  # fmt: skip


async def timed(label: str, step: Callable[[], Awaitable[None]]) -> None:
    t0 = time.perf_counter()
    await step()
    print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)


async def run_sqlite(seed: Seed, cases: dict[str, list[SearchFilter]], args: argparse.Namespace
                     ) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cb-bench-") as tmp:
        path = Path(tmp) / "console.db"
        print("sqlite:", flush=True)

        async def migrate() -> None:
            await (await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{path}"))).close()

        await timed("migrate", migrate)
        await timed("load", lambda: asyncio.to_thread(load_sqlite, path, seed,
                                                      args.analyze_sqlite))  # fmt: skip
        store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{path}"))
        try:
            results = await measure(store, cases)
        finally:
            await store.close()
        report(f"SQLite ({len(seed.messages):,} messages)", results, args.target)


async def run_postgres(seed: Seed, cases: dict[str, list[SearchFilter]],
                       args: argparse.Namespace) -> None:  # fmt: skip
    name = f"cb_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = args.pg.rsplit("/", 1)[0]
    try:
        print("postgresql:", flush=True)
        url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"

        async def migrate() -> None:
            await (await Store.open(StoreConfig(url=url))).close()

        await timed("migrate", migrate)
        await timed("load (COPY) + ANALYZE", lambda: load_postgres(f"{base}/{name}", seed))
        store = await Store.open(StoreConfig(url=url))
        try:
            results = await measure(store, cases)
        finally:
            await store.close()
        report(f"PostgreSQL ({len(seed.messages):,} messages)", results, args.target)
    finally:
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def bench(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    seed = generate(args.size, rng)
    print(f"generated {len(seed.messages):,} messages, {len(seed.events):,} events, "
          f"{len(seed.deliveries):,} deliveries in {time.perf_counter() - t0:.1f} s",
          flush=True)  # fmt: skip
    cases = filters(seed, args.runs, rng)
    if args.only in (None, "sqlite"):
        await run_sqlite(seed, cases, args)
    if args.only in (None, "postgresql"):
        await run_postgres(seed, cases, args)
    print(f"\ntarget: p95 < {args.target:.0f} ms; total {time.perf_counter() - t0:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000, help="messages to seed")
    ap.add_argument("--runs", type=int, default=40, help="searches per filter type")
    ap.add_argument("--only", choices=("sqlite", "postgresql"))
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--target", type=float, default=300.0, help="p95 target, ms")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--analyze-sqlite", action="store_true")
    args = ap.parse_args(argv)
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
