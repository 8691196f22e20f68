"""Carebridge soak bench: a long paced run with faults in rotation, memory and FDs sampled.

    bench ─publish 200 msg/s (confirms, a lane per patient)─► carebridge.inbound.<source>
          ─► engine (subprocess, one store for its whole life, restarted after each SIGKILL)
          ─► webhook POST ─► aiohttp receiver in this process (keys, repeats, per-patient order)

Every `--fault-every` seconds one fault, in turn: SIGKILL of the engine then a restart on the
same store; the engine's own broker connections closed by the broker (`rabbitmqctl
close_connection`, found by the engine's pid); the destination answering 503 for `--outage`
seconds. Each minute (and at each fault): the running engine's RSS and open FDs (/proc), what
was published (confirmed) and received, the backlog, the receive rate, repeats, the queue depth
and the machine load. Then a drain with a deadline and the verdict: every confirmed message
received, repeats by Idempotency-Key (with the fault they followed), per-patient order, the RSS
slope and the FD count. A script, not a test: it prints a table (and `--json`), and its exit
status is 1 if a message was lost or reordered, 3 if the backlog was not drained in time.

Run from the repository root:  .venv/bin/python bench/soak.py [--minutes 30] [--json out.json]
Talks only to 127.0.0.1; deletes its queues, stops its engine, removes its temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/soak.py` puts bench/, not the root, first
    sys.path.insert(0, str(ROOT))

from adapters.rabbitmq import INBOUND_EXCHANGE, AmqpSettings, Broker  # noqa: E402
from bench.end_to_end import (  # noqa: E402
    CAREBRIDGE,
    DEFAULT_AMQP,
    LOCAL_HOSTS,
    Cleanup,
    machine,
    queue_exists,
    run_main,
    say,
    ticks,
)
from bench.soak_kit import (  # noqa: E402
    PacedPublisher,
    SoakEngine,
    SoakReceiver,
    close_connections,
    engine_connections,
    proc_figures,
    queue_depth,
    traffic,
    vhost_of,
)
from bench.soak_report import describe, store_counts, verdict  # noqa: E402
from mappings.profile import event_id  # noqa: E402
from tests.adt_factory import patients  # noqa: E402

FAULTS = ("sigkill", "close_connection", "http503")


@dataclass
class Sample:
    t_min: float
    label: str
    engine_run: int
    pid: int
    rss_mb: float
    fds: int
    threads: int
    engine_cpu_pct: float
    published: int
    received: int
    backlog: int
    recv_mps: float
    repeats: int
    refused_503: int
    queue_ready: int
    queue_unacked: int
    load1: float


@dataclass
class Fault:
    kind: str
    at_min: float
    seconds: float
    """SIGKILL: kill to ready again; close: the rabbitmqctl calls; 503: the outage."""
    detail: str


@dataclass
class Soak:
    args: argparse.Namespace
    engine: SoakEngine
    receiver: SoakReceiver
    publisher: PacedPublisher
    cleanup: Cleanup
    t0: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _last: tuple[float, int, int, float | None] = (0.0, 0, 0, None)
    """(time, received, pid, engine CPU seconds) at the previous sample."""

    def minutes(self) -> float:
        return (time.monotonic() - self.t0) / 60

    async def sample(self, label: str) -> Sample:
        pid = self.engine.pid
        rss, fds, threads = proc_figures(pid)
        cpu = ticks(pid)
        now, received = time.monotonic(), len(self.receiver.first)
        queue = f"{INBOUND_EXCHANGE}.{self.engine.source}"
        ready, unacked = await asyncio.to_thread(queue_depth, vhost_of(self.args.amqp), queue)
        then, got, last_pid, last_cpu = self._last
        span = max(now - then, 1e-9)
        cpu_pct = float("nan")
        if last_pid == pid and cpu is not None and last_cpu is not None:
            cpu_pct = round(100 * (cpu - last_cpu) / span, 1)
        s = Sample(
            t_min=round((now - self.t0) / 60, 2), label=label, engine_run=len(self.engine.runs),
            pid=pid, rss_mb=round(rss, 1), fds=fds, threads=threads,
            engine_cpu_pct=cpu_pct,
            published=len(self.publisher.confirmed), received=received,
            backlog=len(self.publisher.confirmed) - received,
            recv_mps=round((received - got) / span, 1), repeats=len(self.receiver.repeat_at),
            refused_503=self.receiver.refused, queue_ready=ready, queue_unacked=unacked,
            load1=round(os.getloadavg()[0], 2),
        )  # fmt: skip
        self._last = (now, received, pid, cpu)
        self.samples.append(s)
        say(f"{s.t_min:6.2f} min {label:<18} rss {s.rss_mb:6.1f} MB  fds {s.fds:4d}  "
            f"published {s.published:7d}  backlog {s.backlog:6d}  recv {s.recv_mps:6.1f}/s  "
            f"repeats {s.repeats}  queue {ready}+{unacked}  load {s.load1}")  # fmt: skip
        return s

    async def fault(self, kind: str) -> None:
        await self.sample(f"fault {kind}")
        at, started = self.minutes(), time.monotonic()
        if kind == "sigkill":
            await self.engine.kill()
            await self.engine.start()
            assert self.engine.process is not None
            self.cleanup.processes.append(self.engine.process)
            detail = f"engine run {len(self.engine.runs)} ready (pid {self.engine.pid})"
        elif kind == "close_connection":
            names = await asyncio.to_thread(engine_connections, self.engine.pid, self.args.amqp)
            closed = await asyncio.to_thread(close_connections, names)
            described = ", ".join(d for _, d in names) or "none found"
            detail = f"closed {closed} of {len(names)}: {described}"
        else:
            self.receiver.refuse_until = time.monotonic() + self.args.outage
            detail = f"503 for {self.args.outage:g} s"
        seconds = self.args.outage if kind == "http503" else time.monotonic() - started
        self.faults.append(Fault(kind, round(at, 2), round(seconds, 2), detail))
        say(f"{at:6.2f} min FAULT {kind}: {detail}")

    async def drive(self, publishing: asyncio.Task[None]) -> None:
        """Samples each minute and faults in turn while the publisher runs."""
        every = self.args.fault_every
        next_sample, next_fault, k = self.t0 + 60, self.t0 + every, 0
        while not publishing.done():
            now = time.monotonic()
            if now >= next_fault:
                await self.fault(self.args.faults[k % len(self.args.faults)])
                k, next_fault = k + 1, next_fault + every
                continue
            if now >= next_sample:
                await self.sample("minute")
                next_sample += 60
                continue
            await asyncio.wait({publishing}, timeout=min(next_sample, next_fault) - now)
        publishing.result()

    async def drain(self) -> float:
        """Wait (sampling each minute) until every confirmed message arrived, or the deadline;
        returns the seconds it took."""
        start = time.monotonic()
        end, next_sample = start + self.args.drain, start + 60
        waiting = [c for c in self.publisher.confirmed if c not in self.receiver.first]
        while time.monotonic() < end:
            waiting = [c for c in waiting if c not in self.receiver.first]
            if not waiting:
                break
            if time.monotonic() >= next_sample:
                await self.sample("drain")
                next_sample += 60
            await asyncio.sleep(0.5)
        return time.monotonic() - start


async def postgres_database() -> str:
    """A fresh database on the local PostgreSQL (dropped at the end by `drop_database`)."""
    import asyncpg

    name = f"soak_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_database(store_url: str) -> None:
    import asyncpg

    name = store_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_load(args: argparse.Namespace, state: Soak, run: str) -> float:
    """The paced load with faults, then the drain; returns the drain's seconds."""
    items = traffic(run, patients(args.patients, run=run))
    publishing = asyncio.create_task(state.publisher.run(items, args.minutes * 60))
    try:
        await state.drive(publishing)
    finally:
        publishing.cancel()
    await state.sample("end of load")
    drained = await state.drain()
    await state.sample("end of drain")
    return drained


async def after_stop(args: argparse.Namespace, state: Soak, store_url: str) -> dict[str, Any]:
    """With the engine stopped: what is left in its queue, and in its store, of the messages
    never received."""
    source = state.engine.source
    missing = [f"{event_id(source, c)}.receiver" for c in state.publisher.confirmed
               if c not in state.receiver.first]  # fmt: skip
    queue = f"{INBOUND_EXCHANGE}.{source}"
    ready, _ = await asyncio.to_thread(queue_depth, vhost_of(args.amqp), queue)
    return {"queue_ready_after_stop": ready, **await store_counts(store_url, missing)}


async def soak(args: argparse.Namespace, cleanup: Cleanup) -> dict[str, Any]:
    info = await asyncio.to_thread(machine)
    cleanup.dead_queue_existed = await asyncio.to_thread(
        queue_exists, args.amqp, f"{INBOUND_EXCHANGE}.dead"
    )
    tmp = Path(tempfile.mkdtemp(prefix="carebridge-soak-"))
    cleanup.dirs.append(tmp)
    run, source = f"S{uuid.uuid4().hex[:4]}", f"soak-{uuid.uuid4().hex[:8]}"
    cleanup.queues.append(f"{INBOUND_EXCHANGE}.{source}")
    pg = args.store == "postgresql"
    sqlite_url = f"sqlite+aiosqlite:///{tmp / 'carebridge.db'}"
    store_url = await postgres_database() if pg else sqlite_url
    receiver = SoakReceiver()
    await receiver.start()
    engine = SoakEngine(tmp, source, args.amqp, args.engine_command, store_url, receiver.url,
                        extra=args.engine_yaml)  # fmt: skip
    try:
        await engine.start()
        assert engine.process is not None
        cleanup.processes.append(engine.process)
        async with Broker(AmqpSettings(url=args.amqp, connection_name="bench-soak-publish")) as b:
            state = Soak(args, engine, receiver, PacedPublisher(b, source, args.rate), cleanup)
            await state.sample("start")
            drained = await run_load(args, state, run)
        exit_status = await engine.stop()
        left = await after_stop(args, state, store_url)
    finally:
        await receiver.stop()
        if pg:
            with contextlib.suppress(Exception):
                await drop_database(store_url)
    result = verdict(args, state.publisher, receiver, state.samples, state.faults, state.t0, left)
    if result["lost"] or result["reordered"]:
        cleanup.keep.append(tmp)
    return {
        "machine": {**info, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "verdict": result,
        "drain_s": round(drained, 1),
        "engine": {
            "runs": len(engine.runs),
            "exit_statuses": engine.exits,
            "final_exit": exit_status,
            "logs": engine.log_summary(),
            **left,
        },
        "faults": [asdict(f) for f in state.faults],
        "samples": [asdict(s) for s in state.samples],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    amqp = os.environ.get("CAREBRIDGE_TEST_AMQP", DEFAULT_AMQP)
    ap.add_argument("--amqp", default=amqp, help="broker URL, 127.0.0.1 only "
                    "(default $CAREBRIDGE_TEST_AMQP, else the / vhost)")  # fmt: skip
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes of load (30)")
    ap.add_argument("--rate", type=float, default=200.0, help="offered load, msg/s (200)")
    ap.add_argument("--patients", type=int, default=2000, help="patients, in turn (2000)")
    ap.add_argument("--fault-every", type=float, default=180.0, help="seconds between faults")
    ap.add_argument("--faults", type=lambda text: text.split(","), default=list(FAULTS),
                    help=f"faults in turn, comma-separated ({','.join(FAULTS)})")  # fmt: skip
    ap.add_argument("--outage", type=float, default=20.0, help="seconds of 503 (20)")
    ap.add_argument("--drain", type=float, default=600.0, help="drain deadline, s (600)")
    ap.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the engine's store (postgresql: a fresh database on 127.0.0.1:5432)",
    )
    ap.add_argument("--engine-yaml", default="", help="extra YAML appended to the engine config")
    ap.add_argument("--engine-command", default=str(CAREBRIDGE),
                    help="engine command line before `run -c FILE`")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (engine logs, DB)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    host = urlsplit(args.amqp).hostname
    if host not in LOCAL_HOSTS:
        ap.error(f"--amqp must point at 127.0.0.1, not {host!r}")
    if not args.faults or set(args.faults) - set(FAULTS):
        ap.error(f"--faults: some of {', '.join(FAULTS)}")
    if args.fault_every <= args.outage:
        ap.error("--fault-every must be longer than --outage")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outcome: dict[str, Any] = {}

    async def run(a: argparse.Namespace, cleanup: Cleanup) -> dict[str, Any]:
        outcome.update(await soak(a, cleanup))
        return outcome

    status = run_main(args, run, describe)
    if status:
        return status
    v = outcome["verdict"]
    return 1 if v["lost"] or v["reordered"] else 3 if v["undrained"] else 0


if __name__ == "__main__":
    sys.exit(main())
