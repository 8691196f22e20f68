"""End to end against history and over a long run (issue 16 points 4 and 7).

    .venv/bin/python bench/history_e2e.py                   # 1,000,000 past messages, 3 pairs
    .venv/bin/python bench/history_e2e.py --history 100000 --repeat 2
    .venv/bin/python bench/history_e2e.py --store postgresql --history 1000000
    .venv/bin/python bench/history_e2e.py --long 100000     # one run of 100,000 messages

`--history N`: seeds a SQLite store with N past messages (bulk inserts, bench/history.py's
rows), each an event delivered to the bench's destination (`receiver`) with its attempt, five
a patient, the bench's own patients first (so new traffic meets their history), and keeps it
as a file. Then, in turns, end-to-end throughput (bench/end_to_end.py's run: RabbitMQ ->
engine -> webhook, after a warm-up) of an engine on an empty store and of one whose store
starts as a copy of the seeded file; prints each run, the medians, the median of the pairwise
ratios (issue 16 wants >= 0.8) and the plans of the claim's and intake's queries in that store.
With `--store postgresql` the seeded store is a database on 127.0.0.1:5432 (analysed, as
autovacuum would), each history run's database a copy of it (CREATE DATABASE ... TEMPLATE),
each empty run's a new one; all dropped at the end.

`--long N`: one engine, N messages published as fast as confirms allow; prints the engine's peak
RSS (VmHWM, read while it runs; issue 16 wants <= 250 MB) and the deliveries received in each
10 s, so that a slowdown as the backlog grows shows.

Not a test: figures go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench import end_to_end as e2e  # noqa: E402
from bench import history  # noqa: E402
from engine.config import StoreConfig  # noqa: E402
from engine.store import Store  # noqa: E402
from tests.adt_factory import synthetic_nhs_numbers  # noqa: E402

TARGET_RATIO = 0.8
TARGET_RSS_MB = 250.0


async def seed_file(
    folder: Path, rows: int, age: timedelta
) -> tuple[Path, float, dict[str, list[str]]]:
    """A SQLite store (folder/history.db) with `rows` past messages for the bench's destination
    and patients, one a second, the first `age` ago (kept as it is if the file is there);
    returns its path, the seconds seeding took and the hot queries' plans in it."""
    history.DESTINATIONS = ("receiver",)
    history.T0 = datetime.now(UTC) - age
    numbers = synthetic_nhs_numbers(max(1, rows // 5))
    history.patient_of = lambda n: f"nhs:{numbers[(n - history.FIRST_ID) // 5]}"
    seeded = (folder / "history.db").exists()
    store, close = await history.open_store(False, folder)
    try:
        seconds = 0.0 if seeded else await history.seed(store, rows, analyze=False)
        plans = await history.plans(store)
    finally:
        await close()
    return folder / "history.db", seconds, plans


async def seed_database(
    rows: int, age: timedelta, cleanup: e2e.Cleanup
) -> tuple[str, float, dict[str, list[str]]]:
    """As `seed_file`, in a PostgreSQL database of its own (dropped by `cleanup` at the end);
    returns its name, the seconds seeding took and the hot queries' plans in it. Nobody stays
    connected to it: it is the template of each history run's database."""
    history.DESTINATIONS = ("receiver",)
    history.T0 = datetime.now(UTC) - age
    numbers = synthetic_nhs_numbers(max(1, rows // 5))
    history.patient_of = lambda n: f"nhs:{numbers[(n - history.FIRST_ID) // 5]}"
    name = f"cb_history_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(e2e.PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    cleanup.databases.append(name)
    netloc = urlsplit(e2e.PG_ADMIN).netloc
    store = await Store.open(StoreConfig(url=f"postgresql+asyncpg://{netloc}/{name}"))
    try:
        seconds = await history.seed(store, rows, analyze=True)
        plans = await history.plans(store)
    finally:
        await store.close()
    return name, seconds, plans


def e2e_args(args: argparse.Namespace, messages: int) -> argparse.Namespace:
    argv = ["--messages", str(messages), "--patients", str(args.patients), "--amqp", args.amqp,
            "--store", args.store]  # fmt: skip
    if args.engine_yaml:
        argv += ["--engine-yaml", args.engine_yaml]
    return e2e.parse_args(argv)


async def pairs(args: argparse.Namespace, cleanup: e2e.Cleanup) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="carebridge-history-e2e-") as tmp:
        e2e.say(f"seeding {args.history:,} past messages ({args.store})")
        age = timedelta(days=args.age)
        seeded: Path | None = None
        template: str | None = None
        if args.store == "postgresql":
            template, seconds, plans = await seed_database(args.history, age, cleanup)
            e2e.say(f"seeded in {seconds:.0f} s (database {template})")
        else:
            folder = args.seeded or Path(tmp)
            seeded, seconds, plans = await seed_file(folder, args.history, age)
            e2e.say(f"seeded in {seconds:.0f} s ({seeded.stat().st_size / 1e6:,.0f} MB)")
        rabbit = await asyncio.to_thread(e2e.rabbitmq_pid)
        receiver = e2e.Receiver()
        await receiver.start()
        runs: dict[str, list[Any]] = {"empty": [], "history": []}
        try:
            for i in range(args.repeat):
                for name, from_history in (("empty", False), ("history", True)):
                    run_args = e2e_args(args, args.messages)
                    run_args.store_from = seeded if from_history else None
                    run_args.pg_template = template if from_history else None
                    items = e2e.batched_messages(f"{name[0].upper()}{i}", args.messages,
                                                 args.patients)  # fmt: skip
                    res, _, _ = await e2e.e2e_throughput(
                        args.amqp, receiver, items, run_args, cleanup, rabbit
                    )
                    runs[name].append(res)
                    e2e.say(f"{name} {i + 1}/{args.repeat}: {res.e2e_mps:,.0f} msg/s")
        finally:
            await receiver.stop()
    return {"seed_s": seconds, "plans": plans, "runs": runs}


def describe_pairs(args: argparse.Namespace, found: dict[str, Any]) -> str:
    empty, full = found["runs"]["empty"], found["runs"]["history"]
    ratios = [b.e2e_mps / a.e2e_mps for a, b in zip(empty, full, strict=True)]
    lines = [f"end to end, {args.messages:,} messages for {args.patients} patients a run, "
             f"empty store against {args.history:,} past messages (seeded in "
             f"{found['seed_s']:.0f} s), in turns:"]  # fmt: skip
    for name, rows in (("empty", empty), ("history", full)):
        each = ", ".join(f"{r.e2e_mps:,.0f}" for r in rows)
        rss = max(r.engine_peak_rss_mb for r in rows)
        intake = statistics.median(r.intake_mps for r in rows)
        lost = sum(r.missing for r in rows)
        e2e_mps = statistics.median(r.e2e_mps for r in rows)
        lines.append(f"  {name:8} {e2e_mps:7,.0f} msg/s ({each}); intake {intake:,.0f} msg/s; "
                     f"peak RSS {rss:.0f} MB; lost {lost}")  # fmt: skip
    median = statistics.median(ratios)
    met = "met" if median >= TARGET_RATIO else "NOT met"
    lines.append(f"  history / empty: {median:.2f} (pairs {', '.join(f'{x:.2f}' for x in ratios)});"
                 f" target >= {TARGET_RATIO}: {met}")  # fmt: skip
    for name, plan in found["plans"].items():
        lines.append(f"plan in the seeded store: {name}")
        lines.extend(f"    {line}" for line in plan)
    return "\n".join(lines)


async def long_run(args: argparse.Namespace, cleanup: e2e.Cleanup) -> dict[str, Any]:
    rabbit = await asyncio.to_thread(e2e.rabbitmq_pid)
    receiver = e2e.Receiver()
    await receiver.start()
    try:
        run_args = e2e_args(args, args.long)
        items = e2e.batched_messages("LONG", args.long, args.patients)
        started = time.perf_counter()
        res, _, _ = await e2e.e2e_throughput(args.amqp, receiver, items, run_args, cleanup, rabbit)
        wanted = {cid for cid, _ in items}
        times = sorted(at for cid, at in receiver.at.items() if cid in wanted)
    finally:
        await receiver.stop()
    start = min(times, default=started)
    windows = Counter(int((at - start) // 10) for at in times)
    return {"result": res, "windows": [windows.get(w, 0) for w in range(max(windows) + 1)]}


def describe_long(args: argparse.Namespace, found: dict[str, Any]) -> str:
    res = found["result"]
    rss = res.engine_peak_rss_mb
    lines = [f"one run of {args.long:,} messages for {args.patients} patients: "
             f"{res.e2e_mps:,.0f} msg/s end to end, intake {res.intake_mps:,.0f} msg/s "
             f"(published at {res.publish_mps:,.0f}), lost {res.missing}, repeats {res.repeats}",
             f"  engine peak RSS {rss:.0f} MB; target <= {TARGET_RSS_MB:g}: "
             f"{'met' if rss <= TARGET_RSS_MB else 'NOT met'}",
             "  deliveries received per 10 s (msg/s), from the first:"]  # fmt: skip
    rates = [f"{n / 10:,.0f}" for n in found["windows"]]
    lines.extend(f"    {10 * i:>5} s: " + " ".join(rates[i : i + 10])
                 for i in range(0, len(rates), 10))  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--history", type=int, default=1_000_000, help="past messages (1,000,000)")
    ap.add_argument("--messages", type=int, default=5000, help="messages a run (5000)")
    ap.add_argument("--patients", type=int, default=200, help="patients they are for (200)")
    ap.add_argument("--repeat", type=int, default=3, help="pairs of runs (3)")
    ap.add_argument(
        "--age",
        type=float,
        default=30.0,
        help="days ago of the oldest past message (30: within the default 90-day retention, "
        "which an engine would otherwise start by pruning)",
    )
    ap.add_argument(
        "--seeded",
        type=Path,
        metavar="DIR",
        help="keep the seeded store in DIR/history.db, and use it if it is there already",
    )
    ap.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the engines' store: SQLite files (default) or PostgreSQL databases on "
        "127.0.0.1:5432, as bench/end_to_end.py --store",
    )
    ap.add_argument("--long", type=int, help="instead: one run of this many messages")
    ap.add_argument("--amqp", default=e2e.DEFAULT_AMQP, help="broker URL (127.0.0.1 only)")
    ap.add_argument("--engine-yaml", default="", help="extra YAML appended to the engine config")
    args = ap.parse_args(argv)
    if args.seeded is not None and args.store != "sqlite":
        ap.error("--seeded keeps a SQLite file: not with --store postgresql")
    args.engine_command, args.keep, args.json = str(e2e.CAREBRIDGE), False, None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.long:
        return e2e.run_main(args, long_run, lambda found: describe_long(args, found))
    return e2e.run_main(args, pairs, lambda found: describe_pairs(args, found))


if __name__ == "__main__":
    sys.exit(main())
