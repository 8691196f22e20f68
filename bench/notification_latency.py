"""Carebridge notification latency: discharge received to clinician notification delivered.

    bench ─publish A03 (paced) + other ADT (paced)─► carebridge.inbound.<source>
          ─► engine (subprocess, SQLite) ─route `discharge`─► `type: notification` destination
          ─► POST to the recipient: an aiohttp receiver in this process (receipt times)

Every discharged patient is admitted first (the A01s are published and committed before the
clock starts, untimed), and a few warm-up discharges go through before the timed run. Then, for
`--duration` seconds, discharges are published at `--rate` per second alongside `--other-rate`
per second of other ADT traffic (ward moves and demographic updates) for other patients, both
paced. Per discharge: publish time (by control id, MSH-10) to receipt time at the recipient,
correlated through the event id the notification carries (`X-Carebridge-Event-Id`, and
`notification.references.event_id` in the body: `mappings.profile.event_id(source, MSH-10)`).
Reports p50/p90/p99/max, how many arrived, and the target: p99 under one second.

Run from the repository root:  .venv/bin/python bench/notification_latency.py [--quick]
Talks only to 127.0.0.1; deletes the queue it declares, stops its engine, removes its temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/notification_latency.py` puts bench/ first
    sys.path.insert(0, str(ROOT))

from adapters.rabbitmq import INBOUND_EXCHANGE, AmqpSettings, Broker  # noqa: E402
from bench.end_to_end import (  # noqa: E402
    AMQP_URL_ENV,
    CAREBRIDGE,
    DEFAULT_AMQP,
    LOCAL_HOSTS,
    ArrivalLog,
    Cleanup,
    Engine,
    cpu_snapshot,
    fmt,
    free_port,
    machine,
    percentile,
    plain_http_allowed,
    publish_windowed,
    queue_exists,
    rabbitmq_pid,
    run_main,
    say,
    stop_process,
    wait_ready,
)
from mappings.profile import event_id  # noqa: E402
from tests.adt_factory import Patient, adt, patients  # noqa: E402

TARGET_P99_MS = 1000.0  # discharge received -> notification delivered, at the default load
ACK_SECRET_ENV = "CB_BENCH_ACK_SECRET"
Headers = dict[str, str | int | float | bool | bytes | None]


# ---- the recipient -----------------------------------------------------------------------------


@dataclass
class Recipient(ArrivalLog):
    """The clinician's endpoint: records when each notification (by event id) first arrived.
    `/sink` (with `--sink`) takes the webhook copy of every event and only counts it."""

    kinds: Counter[str] = field(default_factory=Counter)
    recipients: Counter[str] = field(default_factory=Counter)
    header_body_mismatch: int = 0
    sink_posts: int = 0
    sink_url: str = ""

    async def _notify(self, request: web.Request) -> web.Response:
        now, wall = time.perf_counter(), time.time()
        body = orjson.loads(await request.read())
        note = body["notification"]
        eid = str(note["references"]["event_id"])
        if request.headers.get("X-Carebridge-Event-Id") != eid:
            self.header_body_mismatch += 1
        self.kinds[str(note["kind"])] += 1
        self.recipients[str(note["recipient"])] += 1
        self.arrived(eid, now, wall)
        return web.Response(status=200, text="ok")

    async def _sink(self, request: web.Request) -> web.Response:
        await request.read()
        self.sink_posts += 1
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        base = await self.serve({"/notify": self._notify, "/sink": self._sink})
        self.sink_url = f"{base}/sink"


# ---- the engine --------------------------------------------------------------------------------


def engine_config(
    tmp: Path, source: str, recipient: Recipient, port: int, sink: bool, extra: str, command: str
) -> Path:
    """One mental health source; discharges routed to a notification destination whose
    recipients (the patient's GP practice, then a fallback team) are both this process."""
    plain = plain_http_allowed(command)
    notify_plain = "\n    allow_plain_http: true" if plain else ""
    sink_destination = (
        f'  - {{name: sink, type: webhook, url: "{recipient.sink_url}", timeout: 10s{plain}}}\n'
        if sink
        else ""
    )
    sink_route = "  - {name: everything, to: [sink]}\n" if sink else ""
    text = f"""
amqp: {{url: "${{{AMQP_URL_ENV}}}", prefetch: 200}}
store: {{url: "sqlite+aiosqlite:///{tmp / "carebridge.db"}"}}
http: {{host: 127.0.0.1, port: {port}}}
sources:
  - {{name: {source}, care_setting: mental_health}}
destinations:
  - name: clinicians
    type: notification{notify_plain}
    ack_base_url: http://127.0.0.1:{port}
    ack_secret: "${{{ACK_SECRET_ENV}}}"
    timeout: 10s
    recipients:
      - {{name: practice-b12345, url: "{recipient.url}", gp_practices: [B12345]}}
      - {{name: community-mh-team, url: "{recipient.url}"}}
{sink_destination}routes:
  - {{name: discharges, match: {{kinds: [discharge]}}, to: [clinicians]}}
{sink_route}{extra}
"""
    path = tmp / "carebridge.yaml"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def running_engine(
    args: argparse.Namespace, recipient: Recipient, cleanup: Cleanup
) -> AsyncIterator[Engine]:
    """A fresh engine (own temp dir, SQLite store, unique source); stopped with SIGTERM after."""
    tmp = Path(tempfile.mkdtemp(prefix="carebridge-notify-bench-"))
    cleanup.dirs.append(tmp)
    source = f"bench-notify-{uuid.uuid4().hex[:10]}"
    cleanup.queues.append(f"{INBOUND_EXCHANGE}.{source}")
    port = free_port()
    config = engine_config(tmp, source, recipient, port, args.sink, args.engine_yaml,
                           args.engine_command)  # fmt: skip
    env = {**os.environ, ACK_SECRET_ENV: secrets.token_hex(24), AMQP_URL_ENV: args.amqp}
    with (tmp / "engine.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *shlex.split(args.engine_command), "run", "-c", str(config),
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    cleanup.processes.append(proc)
    try:
        await wait_ready(proc, port)
        yield Engine(source, tmp, port, proc)
    finally:
        await stop_process(proc, signal.SIGTERM, 30)


async def wait_committed(engine: Engine, cids: Sequence[str], deadline: float) -> None:
    """Poll the engine's log until it has committed every one of `cids` at intake."""
    end = time.monotonic() + deadline
    wanted = set(cids)
    while True:
        done = len(wanted & engine.intake_times().keys())
        if done >= len(wanted):
            return
        if engine.process.returncode is not None:
            raise RuntimeError(f"engine exited with {engine.process.returncode}")
        if time.monotonic() > end:
            raise RuntimeError(f"only {done} of {len(wanted)} admissions committed in {deadline}s")
        await asyncio.sleep(0.25)


# ---- traffic -----------------------------------------------------------------------------------


@dataclass
class Traffic:
    admissions: list[tuple[str, bytes]]
    """Untimed, before the clock: an A01 for every patient."""
    warmup: list[tuple[str, bytes]]
    """Untimed discharges, through the whole path once before the clock."""
    schedule: list[tuple[float, str, bytes, bool]]
    """(seconds after the start, control id, message, is a timed discharge), in time order."""


def build_traffic(args: argparse.Namespace, run: str) -> Traffic:
    n_discharges = max(1, round(args.rate * args.duration))
    n_other = max(0, round(args.other_rate * args.duration))
    everyone = patients(args.warmup + n_discharges + args.other_patients, run=run)
    warm = everyone[: args.warmup]
    leaving = everyone[args.warmup : args.warmup + n_discharges]
    staying = everyone[args.warmup + n_discharges :]
    now = datetime.now(UTC).replace(microsecond=0)
    admitted = now - timedelta(days=3)

    def admit(i: int, p: Patient) -> tuple[str, bytes]:
        cid = f"{run}-ADM-{i:05d}"
        return cid, adt("A01", p, cid, admitted + timedelta(seconds=i), ward="WARD1")

    def discharge(tag: str, i: int, p: Patient) -> tuple[str, bytes]:
        cid = f"{run}-{tag}-{i:05d}"
        return cid, adt("A03", p, cid, now + timedelta(seconds=i), ward="WARD1")

    schedule: list[tuple[float, str, bytes, bool]] = []
    for i, p in enumerate(leaving):
        cid, body = discharge("DIS", i, p)
        schedule.append((i / args.rate, cid, body, True))
    for j in range(n_other):
        p = staying[j % len(staying)]
        step = j // len(staying) + 1  # this patient's step-th event after admission
        cid = f"{run}-OTH-{j:06d}"
        when = now + timedelta(seconds=j)
        if step % 4 == 0:  # every fourth: a demographic update
            body = adt("A08", p, cid, when, ward=f"WARD{(step - 1) % 7 + 1}")
        else:  # otherwise a ward move within the site (not notifiable, nor routed)
            ward, prior = f"WARD{step % 7 + 1}", f"WARD{(step - 1) % 7 + 1}"
            body = adt("A02", p, cid, when, ward=ward, prior_ward=prior)
        schedule.append((j / args.other_rate, cid, body, False))
    schedule.sort(key=lambda item: item[0])  # stable: a patient's events keep their order
    return Traffic(
        admissions=[admit(i, p) for i, p in enumerate(everyone)],
        warmup=[discharge("WRM", i, p) for i, p in enumerate(warm)],
        schedule=schedule,
    )


# ---- the measurement ---------------------------------------------------------------------------


@dataclass
class Result:
    duration_s: float
    discharges: int
    other_messages: int
    offered_discharges_per_s: float
    offered_other_per_s: float
    publish_lag_max_ms: float
    """How late the bench was against its own schedule at worst (its pacing, not the engine)."""
    arrived: int
    missing: int
    repeats: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    to_intake_p50_ms: float
    """Publish to the engine's intake commit (broker, intake batch, parse, map, SQLite commit)."""
    to_intake_p99_ms: float
    after_intake_p50_ms: float
    """Intake commit to receipt (wake, claim, follow-up, render, HTTP POST)."""
    after_intake_p99_ms: float
    notifications_by_kind: dict[str, int]
    notifications_by_recipient: dict[str, int]
    header_body_mismatch: int
    sink_posts: int
    engine_cpu_pct: float
    rabbit_cpu_pct: float
    engine_errors: int
    log_events: dict[str, int]


async def measure(
    args: argparse.Namespace, recipient: Recipient, cleanup: Cleanup, rabbit: int | None
) -> Result:
    run = f"N{uuid.uuid4().hex[:4].upper()}"
    traffic = await asyncio.to_thread(build_traffic, args, run)
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    lag = 0.0
    async with (
        running_engine(args, recipient, cleanup) as engine,
        Broker(AmqpSettings(url=args.amqp, connection_name="bench-notify-publish")) as broker,
    ):
        source = engine.source
        headers: Headers = {"source": source}
        say(f"admitting {len(traffic.admissions):,} patients (untimed)")
        await publish_windowed(broker, INBOUND_EXCHANGE, source, traffic.admissions, 256, headers)
        await wait_committed(
            engine, [c for c, _ in traffic.admissions], max(120.0, len(traffic.admissions) / 20)
        )
        if traffic.warmup:
            say(f"warm-up: {len(traffic.warmup)} discharges (untimed)")
            recipient.expect([event_id(source, c) for c, _ in traffic.warmup])
            await publish_windowed(broker, INBOUND_EXCHANGE, source, traffic.warmup, 64, headers)
            if missing := await recipient.wait(60.0):
                raise RuntimeError(f"warm-up: {missing} notifications never arrived")
        timed = [(cid, event_id(source, cid)) for _, cid, _, is_dis in traffic.schedule if is_dis]
        recipient.expect([eid for _, eid in timed])
        failures: list[BaseException] = []

        async def one(cid: str, body: bytes) -> None:
            sent[cid], sent_wall[cid] = time.perf_counter(), time.time()
            try:
                await broker.publish(INBOUND_EXCHANGE, source, body, headers=headers,
                                     message_id=cid)  # fmt: skip
            except Exception as exc:
                failures.append(exc)

        say(
            f"timed run: {args.duration:g} s, {args.rate:g} discharges/s + "
            f"{args.other_rate:g} other msgs/s"
        )
        tasks: set[asyncio.Task[None]] = set()
        cpu0 = cpu_snapshot(engine.process.pid, rabbit)
        start = time.perf_counter()
        for offset, cid, body, _ in traffic.schedule:
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = max(lag, -delay)
            task = asyncio.create_task(one(cid, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=60)
        if failures:
            raise RuntimeError(f"{len(failures)} publishes failed, first: {failures[0]!r}")
        missing = await recipient.wait(max(60.0, args.duration))
        span = time.perf_counter() - start
        cpu1 = cpu_snapshot(engine.process.pid, rabbit)
    intakes = engine.intake_times()
    lat = [1000 * (recipient.at[e] - sent[c]) for c, e in timed if e in recipient.at]
    to_intake = [1000 * (intakes[c] - sent_wall[c]) for c, _ in timed if c in intakes]
    after = [
        1000 * (recipient.wall[e] - intakes[c])
        for c, e in timed
        if c in intakes and e in recipient.wall
    ]
    dis_times = [sent[c] for c, _ in timed]
    other = [cid for _, cid, _, is_dis in traffic.schedule if not is_dis]
    other_times = [sent[c] for c in other]

    def rate(times: Sequence[float]) -> float:
        return (len(times) - 1) / max(max(times) - min(times), 1e-9) if len(times) > 1 else 0.0

    def pct(a: float | None, b: float | None) -> float:
        return 100 * (b - a) / span if a is not None and b is not None else math.nan

    errors = engine.error_lines()
    if missing or errors:
        cleanup.keep.append(engine.tmp)
    return Result(
        duration_s=args.duration,
        discharges=len(timed),
        other_messages=len(other),
        offered_discharges_per_s=rate(dis_times),
        offered_other_per_s=rate(other_times),
        publish_lag_max_ms=1000 * lag,
        arrived=len(lat),
        missing=missing,
        repeats=recipient.repeats,
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        max_ms=max(lat, default=math.nan),
        mean_ms=sum(lat) / len(lat) if lat else math.nan,
        to_intake_p50_ms=percentile(to_intake, 50),
        to_intake_p99_ms=percentile(to_intake, 99),
        after_intake_p50_ms=percentile(after, 50),
        after_intake_p99_ms=percentile(after, 99),
        notifications_by_kind=dict(recipient.kinds),
        notifications_by_recipient=dict(recipient.recipients),
        header_body_mismatch=recipient.header_body_mismatch,
        sink_posts=recipient.sink_posts,
        engine_cpu_pct=pct(cpu0[0], cpu1[0]),
        rabbit_cpu_pct=pct(cpu0[3], cpu1[3]),
        engine_errors=errors,
        log_events=engine.log_events(),
    )


# ---- report ------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    m, p, r, t = results["machine"], results["parameters"], results["result"], results["target"]
    verdict = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[t["met"]]
    sink = f"; sink posts {r['sink_posts']:,}" if p["sink"] else ""
    lines = [
        "Carebridge notification latency (discharge published -> notification at the recipient)",
        f"  machine : {m['nproc']} CPU ({m['cpu_model']}), Python {m['python']}, "
        f"RabbitMQ {m['rabbitmq']}, load {m['loadavg_at_start']}, commit {m['git_commit']}",
        f"  load    : {p['rate']:g} discharges/s + {p['other_rate']:g} other ADT msgs/s for "
        f"{p['other_patients']} other patients, {p['duration']:g} s, warm-up {p['warmup']}"
        + (", every event also to a webhook sink" if p["sink"] else ""),
        f"  offered : {fmt(r['offered_discharges_per_s'], 1)} discharges/s + "
        f"{fmt(r['offered_other_per_s'], 1)} other/s (bench pacing lag at worst "
        f"{fmt(r['publish_lag_max_ms'], 1)} ms)",
        "",
        f"  discharges published {r['discharges']:,}; notifications arrived {r['arrived']:,}; "
        f"never arrived {r['missing']}; repeats {r['repeats']}",
        f"  latency, ms   p50 {fmt(r['p50_ms'], 1)}   p90 {fmt(r['p90_ms'], 1)}   "
        f"p99 {fmt(r['p99_ms'], 1)}   max {fmt(r['max_ms'], 1)}   (mean {fmt(r['mean_ms'], 1)})",
        f"    publish -> intake commit, p50 / p99 ms   {fmt(r['to_intake_p50_ms'], 1)} / "
        f"{fmt(r['to_intake_p99_ms'], 1)}",
        f"    intake commit -> receipt, p50 / p99 ms   {fmt(r['after_intake_p50_ms'], 1)} / "
        f"{fmt(r['after_intake_p99_ms'], 1)}",
        f"  notifications (with warm-up) by kind {r['notifications_by_kind']}, by recipient "
        f"{r['notifications_by_recipient']}; header/body event id mismatches "
        f"{r['header_body_mismatch']}{sink}",
        f"  engine CPU {fmt(r['engine_cpu_pct'])}% of one core, RabbitMQ "
        f"{fmt(r['rabbit_cpu_pct'])}%; engine error lines {r['engine_errors']}",
        "",
        f"  target {t['name']}: {t['wanted']} -> {t['measured']}  {verdict}",
    ]
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a 10 s timed run (default 60 s)")
    ap.add_argument("--duration", type=float, help="seconds of paced traffic (60; --quick 10)")
    ap.add_argument("--rate", type=float, default=20.0, help="discharges/s (20)")
    ap.add_argument("--other-rate", type=float, default=80.0, help="other ADT msgs/s (80)")
    ap.add_argument("--other-patients", type=int, default=400, help="patients they are for (400)")
    ap.add_argument("--warmup", type=int, help="untimed discharges first (20; --quick 10)")
    ap.add_argument("--sink", action="store_true", help="route every event to a webhook too")
    ap.add_argument("--amqp", default=DEFAULT_AMQP, help="broker URL (127.0.0.1 only)")
    ap.add_argument("--engine-yaml", default="", help="extra YAML appended to the engine config")
    ap.add_argument(
        "--engine-command",
        default=str(CAREBRIDGE),
        help="engine command line before `run -c FILE` (default: the carebridge console script)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (engine log, DB)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.duration is None:
        args.duration = 10.0 if args.quick else 60.0
    if args.warmup is None:
        args.warmup = 10 if args.quick else 20
    if args.rate <= 0 or args.other_rate < 0 or args.duration <= 0:
        ap.error("--rate and --duration must be positive, --other-rate not negative")
    if args.other_rate > 0 and args.other_patients < 1:
        ap.error("--other-patients must be at least 1 with --other-rate")
    host = urlsplit(args.amqp).hostname
    if host not in LOCAL_HOSTS:
        ap.error(f"--amqp must point at 127.0.0.1, not {host!r}")
    return args


async def bench(args: argparse.Namespace, cleanup: Cleanup) -> dict[str, Any]:
    info = await asyncio.to_thread(machine)
    rabbit = await asyncio.to_thread(rabbitmq_pid)
    dead_queue = f"{INBOUND_EXCHANGE}.dead"
    cleanup.dead_queue_existed = await asyncio.to_thread(queue_exists, args.amqp, dead_queue)
    recipient = Recipient()
    await recipient.start()
    try:
        result = await measure(args, recipient, cleanup, rabbit)
    finally:
        await recipient.stop()
    say(f"p99 {fmt(result.p99_ms, 1)} ms, {result.arrived}/{result.discharges} arrived")
    target = {
        "name": f"p99 discharge -> notification at {args.rate:g}+{args.other_rate:g} msg/s",
        "wanted": f"< {TARGET_P99_MS:g} ms, every notification arrived",
        "measured": f"{fmt(result.p99_ms, 1)} ms, {result.missing} missing",
        "met": None
        if math.isnan(result.p99_ms)
        else result.p99_ms < TARGET_P99_MS and result.missing == 0,
    }
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return {"machine": info, "parameters": params, "result": asdict(result), "target": target}


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(parse_args(argv), bench, report)


if __name__ == "__main__":
    sys.exit(main())
