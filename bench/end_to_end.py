"""Carebridge end-to-end benchmark: the raw AMQP baseline and the engine, on the same broker.

    raw baseline   bench ─publish (confirms, windowed)─► quorum queue ─consume (manual ack)─► bench
    end to end     bench ─publish─► carebridge.inbound.<source> ─► engine (subprocess, SQLite)
                         ─► webhook POST ─► aiohttp receiver in this process (receipt times)

    trivial engine bench ─publish─► queue ─► bench/trivial_engine.py (consume, split-parse 15
                         fields, publish with confirms, ack) ─► queue ─► bench

Measures, in one run: raw publish+consume messages/s; the trivial engine's messages/s; end-to-end
messages/s (first publish to last receipt, N synthetic ITK ADT messages); latency (publish to
receipt, p50/p99/max) at a fixed offered load; the ratios end-to-end / trivial engine and
end-to-end / raw. With `--compare REV`, the engine as built at REV (a git worktree in a temp dir,
run with this venv's packages) is run beside this checkout's, A B, B A, A B (the order turns with
each pair, so a drifting load favours neither), and the ratio of each pair is printed, so a
regression shows as a ratio, not a memory. Prints a table, optionally writes JSON (`--json`).
With `--profile DIR`, one more throughput run is sampled with py-spy and the engine's hotspots
are reported. This is a script, not a test: nothing here asserts a speed.

Run from the repository root:  .venv/bin/python bench/end_to_end.py [--quick] [--json out.json]
Talks only to 127.0.0.1; deletes the queues it declares, stops its engines, removes temp dirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import orjson
import pika
import structlog
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/end_to_end.py` puts bench/, not the root, first
    sys.path.insert(0, str(ROOT))

from adapters.rabbitmq import (  # noqa: E402
    INBOUND_EXCHANGE,
    AmqpSettings,
    Broker,
    InboundDelivery,
    inbound_topology,
)
from engine.simulate.journeys import journeys  # noqa: E402
from engine.simulate.messages import messages as sim_messages  # noqa: E402
from engine.simulate.pathways import packaged_pathways  # noqa: E402
from tests.adt_factory import patients, stream  # noqa: E402

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Where `--store postgresql` creates (and drops) a database for each engine run."""
CAREBRIDGE = Path(sys.executable).with_name("carebridge")
PY_SPY = Path(sys.executable).with_name("py-spy")
TARGET_TRIVIAL_SHARE = 0.20  # end to end, as a share of the trivial engine in the same run
TARGET_P99_MS = 100.0  # at 100 messages/s offered
TARGET_SCALE_OUT = 1.5  # two engine processes on one PostgreSQL database against one
TRIVIAL_ENGINE = Path(__file__).resolve().with_name("trivial_engine.py")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


# ---- bookkeeping for cleanup -------------------------------------------------------------------


@dataclass
class Cleanup:
    """Everything this run created, undone at the end even after an error or Ctrl-C."""

    queues: list[str] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    dead_queue_existed: bool = True
    keep: list[Path] = field(default_factory=list)
    """Temp dirs of engines that lost messages or logged errors: kept for a post-mortem."""
    databases: list[str] = field(default_factory=list)
    """PostgreSQL databases made for `--store postgresql` and not dropped yet."""

    def kill_processes(self) -> None:
        for proc in self.processes:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL)

    def remove_dirs(self) -> None:
        for path in self.dirs:
            if path not in self.keep:
                shutil.rmtree(path, ignore_errors=True)


def queue_exists(url: str, name: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        try:
            channel.queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return False
        return True
    finally:
        if connection.is_open:
            connection.close()


def delete_queues(url: str, names: Sequence[str], *, dead_queue: str | None) -> list[str]:
    """Delete the queues this run declared; the shared dead-letter queue only if this run
    created it and it is still empty. Returns the names deleted."""
    deleted: list[str] = []
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
            deleted.append(name)
        if dead_queue is not None:
            # Not `if_empty=True`: RabbitMQ 3.10 answers it for a quorum queue with a
            # connection-level NOT_IMPLEMENTED. Look at its depth, then delete.
            try:
                depth = channel.queue_declare(dead_queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                depth = None  # gone already
            if depth == 0:
                channel.queue_delete(dead_queue)
                deleted.append(dead_queue)
            # otherwise it holds someone's dead letters: leave it alone
    finally:
        if connection.is_open:
            connection.close()
    return deleted


# ---- small helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of unsorted values (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return statistics.median(vals) if vals else math.nan


def ticks(pid: int, *, thread: bool = False, system: bool = False) -> float | None:
    """CPU seconds a process (all threads; or only its main thread) has used so far: user +
    system, or only system time. None if it cannot be read."""
    path = f"/proc/{pid}/task/{pid}/stat" if thread else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    used = int(fields[12]) if system else int(fields[11]) + int(fields[12])
    return used / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), in MB; NaN where /proc cannot say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


def postgres_cpu() -> float:
    """CPU seconds used so far by every process named `postgres` on this machine (the server
    and its backends; a backend that exited during the window is not counted, so this is a
    floor). 0.0 where there is none."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float | None:
    """CPU seconds the whole machine has spent busy so far, summed over its cores (everything
    in /proc/stat's cpu line but idle and iowait)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:]]
    busy = sum(values) - values[3] - values[4]  # idle, iowait
    busy -= sum(values[8:10])  # guest time is already in user time
    return busy / os.sysconf("SC_CLK_TCK")


def ceiling(result: dict[str, Any] | ThroughputResult) -> float:
    """msg/s the machine could carry if every core were as busy per message as in this run:
    what more engine processes could reach at best, the rest of the machine unchanged."""
    values = result if isinstance(result, dict) else vars(result)
    busy, rate = values["machine_busy_pct"], values["e2e_mps"]
    cores = os.cpu_count() or 1
    return rate * 100 * cores / busy if busy and not math.isnan(busy) else math.nan


def cpu_snapshot(
    engine_pid: int | Sequence[int], rabbit_pid: int | None
) -> tuple[float | None, ...]:
    """CPU seconds so far: the engine (summed over its processes when given several), its
    event-loop thread(s), its kernel time, RabbitMQ, this process, PostgreSQL (every
    `postgres` process), the whole machine busy (all cores)."""
    pids = [engine_pid] if isinstance(engine_pid, int) else list(engine_pid)

    def summed(**kwargs: bool) -> float | None:
        values = [ticks(pid, **kwargs) for pid in pids]
        return None if None in values else sum(v for v in values if v is not None)

    return (
        summed(),
        summed(thread=True),
        summed(system=True),
        ticks(rabbit_pid) if rabbit_pid else None,
        time.process_time(),
        postgres_cpu(),
        machine_busy(),
    )


TRAFFIC = "stream"
"""`stream`: admit, transfers, discharge per patient; `simulated`: `carebridge simulate`'s
journeys (leave, cancels, merges, deaths, messy but legal input) from the packaged pathways."""


def batched_messages(run: str, count: int, n_patients: int) -> list[tuple[str, bytes]]:
    """`count` ITK ADT messages for `n_patients`, interleaved, of the chosen traffic."""
    if TRAFFIC == "simulated":
        return simulated_messages(run, count, n_patients)
    per_patient = max(1, math.ceil(count / n_patients))
    return [(cid, body) for _, cid, body in stream(patients(n_patients), per_patient, run=run)][
        :count
    ]


def simulated_messages(run: str, count: int, n_patients: int) -> list[tuple[str, bytes]]:
    """`count` messages of simulated journeys (valid ones only: each gives one delivery), the
    seed taken from `run` so that each run's control ids are its own."""
    seed = int.from_bytes(hashlib.sha256(run.encode()).digest()[:3], "big")
    journeys_needed = max(n_patients, math.ceil(count / 4))
    drawn = journeys(packaged_pathways(), patients=journeys_needed, seed=seed,
                     start=datetime(2026, 11, 1, tzinfo=UTC), window=timedelta(days=7))  # fmt: skip
    events = sorted((e for j in drawn for e in j), key=lambda e: (e.at, e.journey, e.index))
    sent = sim_messages(events, seed=seed, messy_share=0.2, invalid_share=0.0)
    return [(m.control_id, m.payload) for m in sent][:count]


# ---- machine ---------------------------------------------------------------------------------


def run_quiet(cmd: list[str], timeout: float = 60) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = run_quiet(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = run_quiet(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "engine", "adapters", "mappings"]
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "rabbitmq": run_quiet(["rabbitmqctl", "version"]) or "unknown",
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": (commit or "unknown") + ("+local changes" if dirty else ""),
        "hl7v2_mapping": mapping_build(),
    }


def mapping_build() -> str:
    """What this build's engine runs of `mappings.hl7v2`: compiled, or the Python and why."""
    status = [sys.executable, str(ROOT / "tools" / "native.py"), "status"]
    return subprocess.run(status, capture_output=True, text=True, check=False).stdout.strip()


def rabbitmq_pid() -> int | None:
    out = run_quiet(["rabbitmqctl", "-q", "eval", "os:getpid()."])
    digits = re.sub(r"\D", "", out or "")
    return int(digits) if digits else None


# ---- publishing ------------------------------------------------------------------------------


async def publish_windowed(
    broker: Broker,
    exchange: str,
    routing_key: str,
    items: Sequence[tuple[str, bytes]],
    window: int,
    headers: dict[str, str | int | float | bool | bytes | None] | None = None,
) -> tuple[float, float]:
    """Publish with confirms, up to `window` unconfirmed; returns (first publish, all confirmed)
    as perf_counter() times. Workers take items in order and basic_publish synchronously, so the
    wire order is the list order (a patient's events stay in order)."""
    it = iter(items)
    started = time.perf_counter()

    async def worker() -> None:
        for cid, body in it:
            await broker.publish(exchange, routing_key, body, headers=headers, message_id=cid)

    await asyncio.gather(*(worker() for _ in range(max(1, min(window, len(items))))))
    return started, time.perf_counter()


# ---- raw AMQP baseline -----------------------------------------------------------------------


@dataclass
class RawResult:
    messages: int
    publish_mps: float
    consume_mps: float
    pipeline_mps: float
    """Publish and consume at once (consumer attached): first publish to last ack."""


async def raw_baseline(
    url: str, items: Sequence[tuple[str, bytes]], window: int, prefetch: int, cleanup: Cleanup
) -> RawResult:
    """Publish-only, consume-only, then both at once, on a fresh quorum queue shaped like an
    engine inbound queue (quorum, delivery limit, DLX, single active consumer)."""
    name = f"bench-raw-{uuid.uuid4().hex[:10]}"
    topology = inbound_topology([name], exchange=INBOUND_EXCHANGE, delivery_limit=10)
    queue = f"{INBOUND_EXCHANGE}.{name}"
    cleanup.queues.append(queue)
    n = len(items)
    publisher = Broker(AmqpSettings(url=url, connection_name="bench-raw-publish"), topology)
    consumer = Broker(
        AmqpSettings(url=url, prefetch=prefetch, connection_name="bench-raw-consume"), topology
    )
    await publisher.start()
    try:
        await consumer.start()
        try:
            t0, t1 = await publish_windowed(publisher, INBOUND_EXCHANGE, name, items, window)
            publish_mps = n / (t1 - t0)

            state = {"count": 0, "target": n}
            done = asyncio.Event()

            async def handler(delivery: InboundDelivery) -> None:
                delivery.ack()
                state["count"] += 1
                if state["count"] >= state["target"]:
                    done.set()

            c0 = time.perf_counter()
            await consumer.consume(queue, handler)
            await asyncio.wait_for(done.wait(), timeout=max(60.0, n / 50))
            consume_mps = n / (time.perf_counter() - c0)

            state["count"], state["target"] = 0, n
            done.clear()
            p0, _ = await publish_windowed(publisher, INBOUND_EXCHANGE, name, items, window)
            await asyncio.wait_for(done.wait(), timeout=max(60.0, n / 50))
            pipeline_mps = n / (time.perf_counter() - p0)
        finally:
            await consumer.close()
    finally:
        await publisher.close()
    return RawResult(n, publish_mps, consume_mps, pipeline_mps)


# ---- the webhook receiver --------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class LocalWebhook:
    """An aiohttp server on 127.0.0.1 at a free port, for the engine to post to."""

    url: str = ""
    _runner: web.AppRunner | None = None

    async def serve(self, routes: dict[str, Handler]) -> str:
        """Start serving `routes` (path -> POST handler); the base URL, also the first route's
        URL in `url`."""
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_post(path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024).start()
        base = f"http://127.0.0.1:{port}"
        self.url = base + next(iter(routes))
        return base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class ArrivalLog(LocalWebhook):
    """When each id first arrived, repeats counted, and a wait for an expected set of ids."""

    at: dict[str, float] = field(default_factory=dict)  # perf_counter()
    wall: dict[str, float] = field(default_factory=dict)  # time.time()
    repeats: int = 0
    _wanted: set[str] = field(default_factory=set)
    _got: int = 0
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, key: str, now: float, wall: float) -> None:
        if key in self.at:
            self.repeats += 1
            return
        self.at[key], self.wall[key] = now, wall
        if key in self._wanted:
            self._got += 1
            if self._got >= len(self._wanted):
                self._done.set()

    def expect(self, keys: Iterable[str]) -> None:
        self._wanted = set(keys)
        self._got = sum(1 for k in self._wanted if k in self.at)
        self._done = asyncio.Event()
        if self._got >= len(self._wanted):
            self._done.set()

    async def wait(self, deadline: float) -> int:
        """Wait until every expected id arrived or `deadline` seconds pass; return missing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), deadline)
        return len(self._wanted) - self._got

    def reset(self) -> None:
        self.at.clear()
        self.wall.clear()
        self.repeats = 0
        self.expect(())


@dataclass
class Receiver(ArrivalLog):
    """Records, per control id (`source.message_id`), when its event first arrived."""

    async def _handle(self, request: web.Request) -> web.Response:
        now, wall = time.perf_counter(), time.time()
        event = orjson.loads(await request.read())
        self.arrived(str(event["source"]["message_id"]), now, wall)
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        await self.serve({"/events": self._handle})


# ---- the engine subprocess -------------------------------------------------------------------


@dataclass
class Engine:
    source: str
    tmp: Path
    http_port: int
    process: asyncio.subprocess.Process
    replicas: list[Engine] = field(default_factory=list)
    """More engine processes on the same source and PostgreSQL database (`--replicas`); the
    log-reading methods below read them all."""

    @property
    def log_path(self) -> Path:
        return self.tmp / "engine.log"

    @property
    def pids(self) -> list[int]:
        return [self.process.pid, *(r.process.pid for r in self.replicas)]

    def _lines(self) -> Iterator[bytes]:
        for engine in (self, *self.replicas):
            with engine.log_path.open("rb") as fh:
                yield from fh

    def intake_times(self) -> dict[str, float]:
        """Control id -> wall time the engine logged its intake commit (`intake.accepted`)."""
        out: dict[str, float] = {}
        for line in self._lines():
            if b'"intake.accepted"' not in line:
                continue
            try:
                record = orjson.loads(line)
                stamp = datetime.fromisoformat(record["timestamp"]).timestamp()
            except (orjson.JSONDecodeError, KeyError, ValueError):
                continue
            out[str(record.get("message_key"))] = stamp
        return out

    def error_lines(self) -> int:
        return sum(
            1 for line in self._lines() if b'"level": "error"' in line or b"Traceback" in line
        )

    def log_events(self) -> dict[str, int]:
        """How many log lines of each event name the engine wrote (for a post-mortem)."""
        counts: Counter[str] = Counter()
        for line in self._lines():
            try:
                counts[str(orjson.loads(line).get("event"))] += 1
            except (orjson.JSONDecodeError, AttributeError):
                counts["(not JSON)"] += 1
        return dict(counts.most_common())


AMQP_URL_ENV = "CB_BENCH_AMQP_URL"
"""The engine's config takes the broker URL (and its password) from this variable: a config file
holds no credentials."""


@functools.cache
def plain_http_allowed(command: str) -> str:
    """``, allow_plain_http: true`` for an engine that has the setting (it needs it for the
    bench's receivers on plain http on loopback); nothing for an older build (``--compare``),
    which refuses the setting as unknown."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.yaml"
        probe.write_text("sources: [{name: a}]\ndestinations:\n  - {name: r, type: webhook, "
                         "url: 'http://127.0.0.1/', allow_plain_http: true}\n")  # fmt: skip
        done = subprocess.run([*shlex.split(command), "check-config", str(probe)],
                              capture_output=True, timeout=120, check=False)  # fmt: skip
    return ", allow_plain_http: true" if done.returncode == 0 else ""


ENGINE_PREFETCH = [200]
"""The engines' `amqp.prefetch` (`--engine-prefetch`)."""


def engine_config(
    tmp: Path,
    source: str,
    receiver_url: str,
    port: int,
    extra: str,
    command: str,
    store_url: str | None = None,
) -> Path:
    plain = plain_http_allowed(command)
    store_url = store_url or f"sqlite+aiosqlite:///{tmp / 'carebridge.db'}"
    text = f"""
amqp: {{url: "${{{AMQP_URL_ENV}}}", prefetch: {ENGINE_PREFETCH[0]}}}
store: {{url: "{store_url}"}}
http: {{host: 127.0.0.1, port: {port}}}
sources:
  - {{name: {source}, care_setting: mental_health}}
destinations:
  - {{name: receiver, type: webhook, url: "{receiver_url}", timeout: 10s{plain}}}
routes:
  - {{name: all, to: [receiver]}}
{extra}
"""
    path = tmp / "carebridge.yaml"
    path.write_text(text)
    return path


async def wait_ready(proc: asyncio.subprocess.Process, port: int, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    url = f"http://127.0.0.1:{port}/readyz"
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"engine exited with {proc.returncode} before it was ready")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > end:
                raise RuntimeError(f"engine not ready within {deadline:g}s")
            await asyncio.sleep(0.1)


async def stop_process(proc: asyncio.subprocess.Process, sig: int, deadline: float) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), deadline)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.wait_for(proc.wait(), 10)


@contextlib.asynccontextmanager
async def running_engine(
    url: str,
    receiver: Receiver,
    cleanup: Cleanup,
    extra: str,
    command: str,
    *,
    store: str = "sqlite",
    replicas: int = 1,
    store_from: Path | None = None,
    pg_template: str | None = None,
) -> AsyncIterator[Engine]:
    """A fresh engine (own temp dir, unique source; a SQLite store in the temp dir, or with
    `store="postgresql"` a database of its own, created here and dropped after), and with
    `replicas` > 1 more engine processes on the same source and database; stopped with SIGTERM
    after. With `store_from`, the SQLite store starts as a copy of that file; with
    `pg_template`, the PostgreSQL database as a copy of that database (history_e2e.py)."""
    tmp = Path(tempfile.mkdtemp(prefix="carebridge-bench-"))
    cleanup.dirs.append(tmp)
    if store_from is not None:
        await asyncio.to_thread(shutil.copyfile, store_from, tmp / "carebridge.db")
    source = f"bench-{uuid.uuid4().hex[:10]}"
    cleanup.queues.append(f"{INBOUND_EXCHANGE}.{source}")
    async with contextlib.AsyncExitStack() as stack:
        store_url = None
        if store == "postgresql":
            store_url = await stack.enter_async_context(postgres_database(cleanup, pg_template))
        engines: list[Engine] = []
        for index in range(replicas):  # one at a time: the first migrates the database
            folder = tmp if index == 0 else tmp / f"replica-{index}"
            folder.mkdir(exist_ok=True)
            port = free_port()
            config = engine_config(folder, source, receiver.url, port, extra, command, store_url)
            with (folder / "engine.log").open("ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    *shlex.split(command), "run", "-c", str(config), stdout=log, stderr=log,
                    stdin=subprocess.DEVNULL, env={**os.environ, AMQP_URL_ENV: url},
                )  # fmt: skip
            cleanup.processes.append(proc)
            stack.push_async_callback(stop_process, proc, signal.SIGTERM, 30)
            await wait_ready(proc, port)
            engines.append(Engine(source, folder, port, proc))
        engines[0].replicas = engines[1:]
        yield engines[0]


@contextlib.asynccontextmanager
async def postgres_database(cleanup: Cleanup, template: str | None = None) -> AsyncIterator[str]:
    """A new database on the local PostgreSQL (`PG_ADMIN`), a copy of `template` if given (no
    one may be connected to that), its engine URL; dropped after."""
    name = f"cb_bench_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await admin.close()
    cleanup.databases.append(name)
    try:
        yield f"postgresql+asyncpg://{urlsplit(PG_ADMIN).netloc}/{name}"
    finally:
        await drop_database(name)
        cleanup.databases.remove(name)


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def publish_into(
    engine_source: str, broker: Broker, items: Sequence[tuple[str, bytes]], window: int
) -> tuple[float, float]:
    return await publish_windowed(
        broker, INBOUND_EXCHANGE, engine_source, items, window, headers={"source": engine_source}
    )


# ---- end-to-end throughput -------------------------------------------------------------------


@dataclass
class ThroughputResult:
    messages: int
    e2e_mps: float
    publish_mps: float
    """Into the engine's queue while the engine consumes (confirms, windowed)."""
    intake_mps: float
    """First publish to the last intake commit the engine logged."""
    missing: int
    repeats: int
    engine_cpu_pct: float
    engine_main_thread_cpu_pct: float
    """The event-loop thread alone (the rest: SQLite connection threads, thread churn)."""
    engine_system_cpu_pct: float
    rabbit_cpu_pct: float
    bench_cpu_pct: float
    engine_errors: int
    log_events: dict[str, int]
    engine_peak_rss_mb: float = math.nan
    """The engine's peak resident memory (VmHWM) over the whole run, warm-up included."""
    postgres_cpu_pct: float = math.nan
    """Every `postgres` process on the machine (the SQLite runs: whatever else uses it)."""
    machine_busy_pct: float = math.nan
    """The whole machine, summed over its cores (200 = both of two cores busy)."""


async def warm_up(engine: Engine, broker: Broker, receiver: Receiver, count: int) -> None:
    if count <= 0:
        return
    items = batched_messages(f"W{uuid.uuid4().hex[:4]}", count, min(count, 50))
    receiver.expect(cid for cid, _ in items)
    await publish_into(engine.source, broker, items, 64)
    missing = await receiver.wait(max(60.0, count / 10))
    if missing:
        raise RuntimeError(f"warm-up: {missing} of {count} messages never arrived")


async def e2e_throughput(
    url: str,
    receiver: Receiver,
    items: Sequence[tuple[str, bytes]],
    args: argparse.Namespace,
    cleanup: Cleanup,
    rabbit_pid: int | None,
    profile_to: Path | None = None,
    replicas: int = 1,
) -> tuple[ThroughputResult, Path | None, float]:
    receiver.reset()
    profile: Path | None = None
    sampled = 0.0
    async with (
        running_engine(
            url,
            receiver,
            cleanup,
            args.engine_yaml,
            args.engine_command,
            store=args.store,
            replicas=replicas,
            store_from=getattr(args, "store_from", None),
            pg_template=getattr(args, "pg_template", None),
        ) as engine,  # fmt: skip
        Broker(AmqpSettings(url=url, connection_name="bench-e2e-publish")) as broker,
    ):
        await warm_up(engine, broker, receiver, args.warmup)
        spy: asyncio.subprocess.Process | None = None
        if profile_to is not None:
            profile = profile_to / "engine-throughput.collapsed"
            native = ["--native"] if args.profile_native else ["--nonblocking"]
            spy = await asyncio.create_subprocess_exec(
                str(PY_SPY), "record", "--pid", str(engine.process.pid),
                "--rate", str(spy_rate(args)), "--format", "raw", "--threads", "--idle", *native,
                "-o", str(profile),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            cleanup.processes.append(spy)
            await asyncio.sleep(1.0)  # let py-spy attach before the load starts
            sampled = time.perf_counter()
        receiver.expect(cid for cid, _ in items)
        cpu0 = cpu_snapshot(engine.pids, rabbit_pid)
        t0, _ = await publish_into(engine.source, broker, items, args.window)
        t_published = time.perf_counter()
        wall0 = time.time() - (time.perf_counter() - t0)
        missing = await receiver.wait(max(120.0, len(items) / 10))
        t_end = max((receiver.at[c] for c, _ in items if c in receiver.at), default=t0)
        cpu1 = cpu_snapshot(engine.pids, rabbit_pid)
        peak_rss = max(peak_rss_mb(pid) for pid in engine.pids)  # while it still runs
        if spy is not None:
            sampled = time.perf_counter() - sampled
            await stop_process(spy, signal.SIGINT, 30)
    span = max(t_end - t0, 1e-9)
    intakes = engine.intake_times()
    last_intake = max((intakes[c] for c, _ in items if c in intakes), default=math.nan)

    def pct(a: float | None, b: float | None) -> float:
        return 100 * (b - a) / span if a is not None and b is not None else math.nan

    result = ThroughputResult(
        messages=len(items),
        e2e_mps=(len(items) - missing) / span,
        publish_mps=len(items) / max(t_published - t0, 1e-9),
        intake_mps=len(items) / max(last_intake - wall0, 1e-9),
        missing=missing,
        repeats=receiver.repeats,
        engine_cpu_pct=pct(cpu0[0], cpu1[0]),
        engine_main_thread_cpu_pct=pct(cpu0[1], cpu1[1]),
        engine_system_cpu_pct=pct(cpu0[2], cpu1[2]),
        rabbit_cpu_pct=pct(cpu0[3], cpu1[3]),
        bench_cpu_pct=pct(cpu0[4], cpu1[4]),
        engine_errors=engine.error_lines(),
        log_events=engine.log_events(),
        engine_peak_rss_mb=peak_rss,
        postgres_cpu_pct=pct(cpu0[5], cpu1[5]),
        machine_busy_pct=pct(cpu0[6], cpu1[6]),
    )
    if missing or result.engine_errors:
        cleanup.keep.append(engine.tmp)
    return result, profile, sampled


# ---- the trivial engine, and another build to compare with ------------------------------------


def declare_queues(url: str, inbound: str, outbound: str) -> None:
    """The trivial engine's queues: in, a quorum queue like the engine's; out, a durable one."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare(inbound, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_declare(outbound, durable=True)
    finally:
        if connection.is_open:
            connection.close()


async def trivial_throughput(
    url: str, items: Sequence[tuple[str, bytes]], args: argparse.Namespace, cleanup: Cleanup
) -> float:
    """Messages/s through the trivial engine (a subprocess, like the engine): first publish to
    the last message out."""
    name = uuid.uuid4().hex[:10]
    inbound, outbound = f"bench-trivial-in-{name}", f"bench-trivial-out-{name}"
    cleanup.queues += [inbound, outbound]
    await asyncio.to_thread(declare_queues, url, inbound, outbound)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(TRIVIAL_ENGINE), "--amqp", url, "--queue", inbound, "--out", outbound,
        "--prefetch", "200", stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    cleanup.processes.append(proc)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"trivial engine did not start: {line!r}")
        state = {"count": 0, "last": 0.0}
        done = asyncio.Event()

        async def handler(delivery: InboundDelivery) -> None:
            delivery.ack()
            state["count"] += 1
            state["last"] = time.perf_counter()
            if state["count"] >= len(items):
                done.set()

        async with (
            Broker(AmqpSettings(url=url, connection_name="bench-trivial-publish")) as publisher,
            Broker(AmqpSettings(url=url, prefetch=500, connection_name="bench-trivial-out")) as out,
        ):
            await out.consume(outbound, handler)
            t0, _ = await publish_windowed(publisher, "", inbound, items, args.window)
            await asyncio.wait_for(done.wait(), timeout=max(120.0, len(items) / 10))
        return len(items) / max(state["last"] - t0, 1e-9)
    finally:
        await stop_process(proc, signal.SIGTERM, 10)


def tree_command(tree: Path, code: str) -> str:
    """A command running `code` with this venv's Python and packages but the code of `tree`.
    `-P`: without it, `python -c` puts the working directory first on the path, ahead of
    PYTHONPATH, and run from this repository (as the bench is) it imported this build's
    `engine`, not the tree's: every --compare until then ran this build twice."""
    return shlex.join(["env", f"PYTHONPATH={tree}", sys.executable, "-P", "-c", code])


@contextlib.contextmanager
def build_at(rev: str) -> Iterator[str]:
    """The engine command for the build at `rev`: its tree checked out in a temp dir and run
    with this venv's Python and packages (its own code first on the path)."""
    tmp = Path(tempfile.mkdtemp(prefix="carebridge-bench-build-"))
    tree = tmp / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev],
                   check=True)  # fmt: skip
    try:
        if (tree / "tools" / "native.py").is_file():  # built as `make` builds it (since 08c3329)
            built = subprocess.run(
                [sys.executable, str(tree / "tools" / "native.py"), "build", "--or-plain",
                 "--mappings", str(tree / "mappings")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            say(f"{rev}: {(built.stdout + built.stderr).strip()}")
        yield tree_command(
            tree, "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
        )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


# ---- latency at a fixed offered load ----------------------------------------------------------


@dataclass
class LatencyResult:
    messages: int
    offered_mps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    to_intake_p50_ms: float
    """Publish to the engine's intake commit (broker, intake batch, parse, map, SQLite commit)."""
    to_intake_p99_ms: float
    after_intake_p50_ms: float
    """Intake commit to receipt (wake, claim, render, HTTP POST)."""
    after_intake_p99_ms: float
    missing: int
    engine_errors: int
    log_events: dict[str, int]


async def e2e_latency(
    url: str,
    receiver: Receiver,
    items: Sequence[tuple[str, bytes]],
    rate: float,
    args: argparse.Namespace,
    cleanup: Cleanup,
) -> LatencyResult:
    receiver.reset()
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    async with (
        running_engine(
            url, receiver, cleanup, args.engine_yaml, args.engine_command, store=args.store
        ) as engine,  # fmt: skip
        Broker(AmqpSettings(url=url, connection_name="bench-latency-publish")) as broker,
    ):
        await warm_up(engine, broker, receiver, args.warmup)
        receiver.expect(cid for cid, _ in items)
        headers: dict[str, str | int | float | bool | bytes | None] = {"source": engine.source}
        failures: list[BaseException] = []

        async def one(cid: str, body: bytes) -> None:
            sent[cid], sent_wall[cid] = time.perf_counter(), time.time()
            try:
                await broker.publish(
                    INBOUND_EXCHANGE, engine.source, body, headers=headers, message_id=cid
                )
            except Exception as exc:
                failures.append(exc)

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for i, (cid, body) in enumerate(items):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(cid, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=60)
        if failures:
            raise RuntimeError(f"{len(failures)} publishes failed, first: {failures[0]!r}")
        missing = await receiver.wait(max(60.0, len(items) / 20))
    cids = [cid for cid, _ in items]
    first = min(sent[c] for c in cids)
    last = max(sent[c] for c in cids)
    lat = [1000 * (receiver.at[c] - sent[c]) for c in cids if c in receiver.at]
    intakes = engine.intake_times()
    to_intake = [1000 * (intakes[c] - sent_wall[c]) for c in cids if c in intakes]
    after = [
        1000 * (receiver.wall[c] - intakes[c]) for c in cids if c in intakes and c in receiver.wall
    ]
    if missing or engine.error_lines():
        cleanup.keep.append(engine.tmp)
    return LatencyResult(
        messages=len(items),
        offered_mps=(len(cids) - 1) / max(last - first, 1e-9),
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        max_ms=max(lat, default=math.nan),
        to_intake_p50_ms=percentile(to_intake, 50),
        to_intake_p99_ms=percentile(to_intake, 99),
        after_intake_p50_ms=percentile(after, 50),
        after_intake_p99_ms=percentile(after, 99),
        missing=missing,
        engine_errors=engine.error_lines(),
        log_events=engine.log_events(),
    )


# ---- profile analysis ------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_IDLE_LEAVES = ("selectors.py:EpollSelector.select", "epoll_wait")
# Frames every event-loop stack starts with: left out of the hotspot list. (SQLAlchemy's async
# layer runs its sync core in greenlets, whose stacks start at the greenlet, not at these.)
_ROOTS = (
    "carebridge:<module>",
    "engine/cli.py:",
    "asyncio/runners.py:",
    "asyncio/base_events.py:BaseEventLoop.run_",
    "asyncio/base_events.py:BaseEventLoop._run_once",
    "asyncio/events.py:Handle._run",
    "_asynciomodule.c:task_step",
)
_DB_THREAD = "_connection_worker_thread"
_STAGES = (  # (marker in the event loop's stack, stage), the first that matches counts
    ("preparation.py:prepare", "intake: parse, map, route (prepare)"),
    ("Corrections.link", "intake: corrections lookup (SQL)"),
    ("record_intake", "intake: insert rows, commit (SQL)"),
    ("Intake._log", "intake: log lines"),
    ("Intake.", "intake: ack, metrics, the rest"),
    ("claim_due", "delivery: claim (SQL)"),
    ("finish_deliver", "delivery: record outcomes (SQL)"),
    ("_write_outcomes", "delivery: record outcomes (SQL)"),
    ("render_webhook", "delivery: render"),
    ("WebhookClient.post", "delivery: HTTP POST (aiohttp)"),
    ("DeliveryLoop._log", "delivery: log lines"),
    ("DeliveryLoop._measure", "delivery: metrics"),
    ("engine/delivery/", "delivery: the rest (tasks, policy, leases)"),
    ("aiosqlite/", "store: aiosqlite hand-off (no engine frame)"),
    ("sqlalchemy/", "store: SQLAlchemy in a greenlet (no engine frame)"),
    ("asyncpg/", "store: asyncpg protocol (no engine frame)"),
    ("aiohttp/", "HTTP client internals (no engine frame)"),
    ("adapters/rabbitmq", "AMQP: receive, ack frames"),
    ("aio_pika/", "AMQP: receive, ack frames"),
    ("aiormq/", "AMQP: receive, ack frames"),
    ("pamqp/", "AMQP: receive, ack frames"),
    ("asyncio/", "event loop: callbacks, wake-ups"),
)


def _stage(stack: str) -> str:
    return next((stage for marker, stage in _STAGES if marker in stack), "other")


_LIBS = ("site-packages/", "/lib/python3.11/", f"{ROOT}/")


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `module.py:func`, paths shortened to the package."""
    m = _FRAME.match(frame)
    if m is None:
        return frame
    path = m["file"]
    for marker in _LIBS:
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{m['func']}"


def spy_rate(args: argparse.Namespace) -> int:
    """Samples/s: --native pauses the engine for every sample, so sample it less often."""
    return 20 if args.profile_native else 100


def aiosqlite_wait_line() -> int:
    """The line where an aiosqlite worker thread waits for its next call (`tx.get()`)."""
    import aiosqlite.core

    lines, first = inspect.getsourcelines(aiosqlite.core._connection_worker_thread)
    return first + next(i for i, text in enumerate(lines) if "tx.get()" in text)


@dataclass
class Hotspot:
    function: str
    cumulative_pct: float
    """Share of the event-loop thread's non-idle samples with this function on the stack."""
    self_pct: float


@dataclass
class Profile:
    """What a py-spy `--idle --threads` raw profile says about the engine's time."""

    seconds: float
    main_samples_outside_epoll_pct: float
    """Event-loop thread samples whose Python leaf is not the epoll wait. py-spy attributes the
    C-level work around epoll (callbacks, GIL hand-offs) to the wait, so this understates the
    thread's CPU; the /proc CPU figures of the throughput runs are the reliable measure."""
    db_threads: int
    """aiosqlite connection threads seen (each pooled connection has one; churn adds more)."""
    db_calls_avg: float
    """Average number of connections inside a SQLite call at once (work, fsync, lock waits)."""
    db_lock_wait_pct: float | None
    """With --native: share of in-call time spent sleeping in SQLite's busy handler."""
    hotspots: list[Hotspot]
    """Functions by share of the event-loop thread's non-idle samples (its Python work)."""
    stage_samples: dict[str, int] = field(default_factory=dict)
    """The event loop's non-idle samples by stage of a message's way (`_STAGES`), and the
    SQLite connection threads' in-call samples as "SQLite threads: inside a call"."""


def analyse_profile(collapsed: Path, rate: int, seconds: float, top: int) -> Profile:
    """Read py-spy's raw output (`--threads --idle`, optionally `--native`)."""
    idle_line = aiosqlite_wait_line()
    main_total = main_idle = 0
    db_in_call = db_lock_wait = 0
    db_threads: set[str] = set()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *raw_frames = stack.split(";")
        if _DB_THREAD in thread:
            db_threads.add(thread)
            # In a DB call (`result = function()`) or waiting for work (`tx.get()`): the
            # worker frame's line number tells them apart.
            worker = [_FRAME.match(f) for f in raw_frames if f.startswith(f"{_DB_THREAD} (")]
            if worker and worker[-1] is not None and worker[-1]["line"] != str(idle_line):
                db_in_call += count
                if any("sqlite3InvokeBusyHandler" in f for f in raw_frames):
                    db_lock_wait += count
            continue
        if "MainThread" not in thread:
            continue
        frames = [_short(f) for f in raw_frames if "(" in f and ".so" not in f]
        main_total += count
        if frames and frames[-1].endswith(_IDLE_LEAVES):
            main_idle += count
            continue
        if any("epoll_wait" in f for f in raw_frames[-2:]):
            main_idle += count
            continue
        stages[_stage(";".join(frames))] += count
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    span = max(seconds * rate, 1)
    busy = max(main_total - main_idle, 1)
    return Profile(
        seconds=round(seconds, 1),
        main_samples_outside_epoll_pct=round(100 * busy / max(main_total, 1), 1),
        db_threads=len(db_threads),
        db_calls_avg=round(db_in_call / span, 2),
        db_lock_wait_pct=(round(100 * db_lock_wait / db_in_call, 1) if db_in_call else None),
        hotspots=[
            Hotspot(name, round(100 * n / busy, 1), round(100 * own[name] / busy, 1))
            for name, n in inclusive.most_common()
            if not name.startswith(_ROOTS)
        ][:top],
        stage_samples={**dict(stages.most_common()), "SQLite threads: inside a call": db_in_call},
    )


# ---- report ----------------------------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def report(results: dict[str, Any]) -> str:
    m, p, s = results["machine"], results["parameters"], results["summary"]
    lines = [
        "Carebridge end-to-end benchmark",
        f"  machine : {m['nproc']} CPU ({m['cpu_model']}), Python {m['python']}, "
        f"RabbitMQ {m['rabbitmq']}, load {m['loadavg_at_start']}, commit {m['git_commit']}",
        f"  build   : {m.get('hl7v2_mapping', 'unknown')}",
        f"  store   : {p['store']}"
        + (f", {p['replicas']} engine processes beside 1" if p["replicas"] > 1 else ""),
        f"  sizes   : raw {p['raw_messages']} msgs, throughput {p['messages']} msgs / "
        f"{p['patients']} patients x{p['repeat']}, latency {p['latency_messages']} msgs at "
        f"{p['rate']:g}/s x{p['latency_repeat']}, window {p['window']}",
        "",
        f"  {'measure':<46}{'median':>12}   runs",
    ]

    def row(label: str, value: float, runs: Sequence[float], digits: int = 0) -> None:
        runs_text = ", ".join(fmt(r, digits) for r in runs)
        lines.append(f"  {label:<46}{fmt(value, digits):>12}   {runs_text}")

    raw = results["raw"]
    row("raw AMQP publish (confirms), msg/s", s["raw_publish_mps"], [r["publish_mps"] for r in raw])
    row(
        "raw AMQP consume (manual ack), msg/s",
        s["raw_consume_mps"],
        [r["consume_mps"] for r in raw],
    )
    row("raw AMQP publish+consume at once, msg/s", s["raw_mps"], [r["pipeline_mps"] for r in raw])
    thr = results["throughput"]
    row("engine: publish into queue, msg/s", s["e2e_publish_mps"], [r["publish_mps"] for r in thr])
    row("engine: intake committed, msg/s", s["e2e_intake_mps"], [r["intake_mps"] for r in thr])
    row("END TO END (publish -> webhook), msg/s", s["e2e_mps"], [r["e2e_mps"] for r in thr])
    row("trivial engine (split-parse, confirms), msg/s", s["trivial_mps"], results["trivial"])
    row("ratio end-to-end / trivial engine", s["trivial_share"], [], 3)
    row("ratio end-to-end / raw", s["ratio"], [], 3)
    if results["compared"]:
        rev = p["compare"]
        row(f"END TO END at {rev}, msg/s", s["compare_mps"],
            [r["e2e_mps"] for r in results["compared"]])  # fmt: skip
        pairs = [a["e2e_mps"] / b["e2e_mps"] for a, b in zip(thr, results["compared"], strict=True)]
        row(f"ratio this build / {rev} (pairs)", s["compare_ratio"], pairs, 2)
    if results.get("replicas"):
        n = p["replicas"]
        row(f"END TO END, {n} engines on one database, msg/s", s["replicas_mps"],
            [r["e2e_mps"] for r in results["replicas"]])  # fmt: skip
        pairs = [b["e2e_mps"] / a["e2e_mps"] for a, b in zip(thr, results["replicas"], strict=True)]
        row(f"scale-out, {n} engines / 1 (pairs)", s["scale_out"], pairs, 2)
        row(f"  {n} engines' CPU, % of one core", math.nan,
            [r["engine_cpu_pct"] for r in results["replicas"]])  # fmt: skip
        row(f"  machine busy with {n} engines, % of one core", math.nan,
            [r["machine_busy_pct"] for r in results["replicas"]])  # fmt: skip
    row("engine CPU, % of one core", s["engine_cpu_pct"], [r["engine_cpu_pct"] for r in thr])
    row(
        "engine peak RSS, MB (target <= 250)",
        s["engine_peak_rss_mb"],
        [r["engine_peak_rss_mb"] for r in thr],
    )
    row(
        "  of which event-loop thread",
        s["engine_main_thread_cpu_pct"],
        [r["engine_main_thread_cpu_pct"] for r in thr],
    )
    row(
        "  of which kernel (system) time",
        s["engine_system_cpu_pct"],
        [r["engine_system_cpu_pct"] for r in thr],
    )
    row("RabbitMQ CPU, % of one core", s["rabbit_cpu_pct"], [r["rabbit_cpu_pct"] for r in thr])
    row("bench process CPU, % of one core", s["bench_cpu_pct"], [r["bench_cpu_pct"] for r in thr])
    row("PostgreSQL CPU (every postgres process), %", s["postgres_cpu_pct"],
        [r["postgres_cpu_pct"] for r in thr])  # fmt: skip
    row(f"machine busy, % of one core ({m['nproc']} cores)", s["machine_busy_pct"],
        [r["machine_busy_pct"] for r in thr])  # fmt: skip
    row("  machine's ceiling at this CPU a message, msg/s", s["ceiling_mps"],
        [ceiling(r) for r in thr])  # fmt: skip
    share = [
        (label, 1e4 * s[key] / s["e2e_mps"])
        for label, key in (("engine", "engine_cpu_pct"), ("RabbitMQ", "rabbit_cpu_pct"),
                           ("PostgreSQL", "postgres_cpu_pct"), ("bench", "bench_cpu_pct"),
                           ("machine", "machine_busy_pct"))
    ]  # fmt: skip
    lines.append("  CPU a message delivered, us: "
                 + " · ".join(f"{label} {fmt(us)}" for label, us in share))  # fmt: skip
    lat = results["latency"]
    lines.append(f"  latency at {p['rate']:g} msg/s offered (publish -> receipt):")
    row("  offered, msg/s", s["offered_mps"], [r["offered_mps"] for r in lat], 1)
    for key in ("p50", "p90", "p99", "max"):
        row(f"  {key}, ms", s[f"{key}_ms"], [r[f"{key}_ms"] for r in lat], 1)
    for label, key in (
        ("publish -> intake commit", "to_intake"),
        ("intake commit -> receipt", "after_intake"),
    ):
        both = f"{fmt(s[f'{key}_p50_ms'], 1)} / {fmt(s[f'{key}_p99_ms'], 1)}"
        lines.append(f"  {'  ' + label + ', p50 / p99 ms':<46}{both:>12}")
    lost = sum(r["missing"] for r in thr + lat)
    errors = sum(r["engine_errors"] for r in thr + lat)
    repeats = sum(r["repeats"] for r in thr)
    lines.append(
        f"  never arrived: {lost}; repeats at the receiver: {repeats}; engine error lines: {errors}"
    )
    lines.append("")
    for name, target in results["targets"].items():
        verdict = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[target["met"]]
        lines.append(f"  target {name}: {target['wanted']} -> {target['measured']}  {verdict}")
    prof = results.get("profile")
    if prof:
        mode = "--idle --native (pauses the engine)" if prof["native"] else "--idle"
        wait = prof["db_lock_wait_pct"]
        lines += [
            "",
            f"  engine profile: py-spy {mode}, {prof['seconds']} s sampled, "
            f"{prof['e2e_mps_under_profiler']:,.0f} msg/s meanwhile ({prof['file']})",
            f"    SQLite connection threads seen: {prof['db_threads']}; connections inside a "
            f"SQLite call at once, on average: {prof['db_calls_avg']}",
        ]
        if wait is not None and prof["native"]:
            lines.append(f"    of that in-call time, waiting for the write lock: {wait}%")
        lines.append(
            f"    {'where the time goes, microseconds per message (sampled)':<66}{'us':>6}"
        )
        lines += [
            f"    {stage[:64]:<66}{us:>6.0f}" for stage, us in prof["stage_us_per_message"].items()
        ]
        lines.append(
            f"    {'function (% of event-loop Python samples)':<66}{'cum%':>6}{'self%':>7}"
        )
        lines += [
            f"    {h['function'][:64]:<66}{h['cumulative_pct']:>6.1f}{h['self_pct']:>7.1f}"
            for h in prof["hotspots"]
        ]
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small sizes: the whole run < 1 min")
    ap.add_argument("--amqp", default=DEFAULT_AMQP, help="broker URL (127.0.0.1 only)")
    ap.add_argument("--messages", type=int, help="end-to-end throughput messages (5000)")
    ap.add_argument("--patients", type=int, help="patients they are spread over (200)")
    ap.add_argument("--raw-messages", type=int, help="raw baseline messages (= --messages)")
    ap.add_argument("--latency-messages", type=int, help="latency run messages (3000)")
    ap.add_argument("--rate", type=float, default=100.0, help="offered load, msg/s (100)")
    ap.add_argument("--repeat", type=int, help="throughput repetitions, median reported (3)")
    ap.add_argument("--latency-repeat", type=int, help="latency repetitions (1)")
    ap.add_argument("--warmup", type=int, help="messages through each engine first (200)")
    ap.add_argument("--window", type=int, default=256, help="unconfirmed publishes (256)")
    ap.add_argument("--prefetch", type=int, default=200, help="raw consumer prefetch (200)")
    ap.add_argument("--engine-yaml", default="", help="extra YAML appended to the engine config")
    ap.add_argument("--engine-prefetch", type=int, default=200,
                    help="the engines' amqp.prefetch (200, the engine's default)")  # fmt: skip
    ap.add_argument(
        "--engine-command",
        default=str(CAREBRIDGE),
        help="engine command line before `run -c FILE` (default: the carebridge console script)",
    )
    ap.add_argument(
        "--profile", type=Path, metavar="DIR", help="one more throughput run under py-spy"
    )
    ap.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: also sample C frames (shows SQLite lock waits; slows the engine)",
    )
    ap.add_argument(
        "--compare",
        metavar="REV",
        help="also run the engine as built at REV (a commit, branch or tag), A B, B A, ..., "
        "with ratios",
    )
    ap.add_argument(
        "--traffic",
        choices=["stream", "simulated"],
        default="stream",
        help="stream: admit/transfers/discharge per patient (default, as earlier figures); "
        "simulated: carebridge simulate's journeys",
    )
    ap.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the engine's store: SQLite in its temp dir (default), or a PostgreSQL database "
        f"created for each engine run on {urlsplit(PG_ADMIN).netloc} and dropped after",
    )
    ap.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="with --store postgresql: also run N engine processes on one database, A B A B "
        "with the single engine, and print the scale-out ratio",
    )
    ap.add_argument("--top", type=int, default=25, help="hotspots to list (25)")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (engine logs, DBs)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    quick = {"messages": 1000, "patients": 50, "latency_messages": 500, "repeat": 1,
             "latency_repeat": 1, "warmup": 50}  # fmt: skip
    full = {"messages": 5000, "patients": 200, "latency_messages": 3000, "repeat": 3,
            "latency_repeat": 1, "warmup": 200}  # fmt: skip
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.raw_messages is None:
        args.raw_messages = args.messages
    host = urlsplit(args.amqp).hostname
    if host not in LOCAL_HOSTS:
        ap.error(f"--amqp must point at 127.0.0.1, not {host!r}")
    if args.replicas < 1 or (args.replicas > 1 and args.store != "postgresql"):
        ap.error("--replicas N > 1 needs --store postgresql (a SQLite file takes one engine)")
    if args.profile is not None and not PY_SPY.exists():
        ap.error(f"--profile needs py-spy: {sys.executable} -m pip install py-spy")
    return args


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def throughput_runs(
    args: argparse.Namespace, receiver: Receiver, cleanup: Cleanup, rabbit: int | None
) -> tuple[list[ThroughputResult], list[ThroughputResult], list[ThroughputResult]]:
    """End-to-end throughput of this build, and pair by pair beside it (A B, B A, ...): with
    --compare, the other build; with --replicas N, N engine processes of this build on one
    database."""
    this: list[ThroughputResult] = []
    other: list[ThroughputResult] = []
    scaled: list[ThroughputResult] = []
    with contextlib.ExitStack() as stack:
        other_command = stack.enter_context(build_at(args.compare)) if args.compare else None
        for i in range(args.repeat):
            # With --compare, every other pair runs the other build first (A B, B A, ...): on a
            # machine whose load drifts, the first of a pair is not always the same build.
            if other_command is not None and i % 2:
                other.append(await _other_build(args, receiver, cleanup, rabbit, other_command, i))
            items = batched_messages(f"T{i}", args.messages, args.patients)
            res, _, _ = await e2e_throughput(args.amqp, receiver, items, args, cleanup, rabbit)
            this.append(res)
            say(f"end to end {i + 1}/{args.repeat}: {res.e2e_mps:,.0f} msg/s")
            if args.replicas > 1:
                items = batched_messages(f"R{i}", args.messages, args.patients)
                res, _, _ = await e2e_throughput(
                    args.amqp, receiver, items, args, cleanup, rabbit, replicas=args.replicas
                )
                scaled.append(res)
                say(f"end to end, {args.replicas} engines {i + 1}/{args.repeat}: "
                    f"{res.e2e_mps:,.0f} msg/s")  # fmt: skip
            if other_command is not None and not i % 2:
                other.append(await _other_build(args, receiver, cleanup, rabbit, other_command, i))
    return this, other, scaled


async def _other_build(
    args: argparse.Namespace,
    receiver: Receiver,
    cleanup: Cleanup,
    rabbit: int | None,
    command: str,
    i: int,
) -> ThroughputResult:
    """One throughput run of the --compare build (its i-th)."""
    items = batched_messages(f"C{i}", args.messages, args.patients)
    against = argparse.Namespace(**{**vars(args), "engine_command": command})
    res, _, _ = await e2e_throughput(args.amqp, receiver, items, against, cleanup, rabbit)
    say(f"end to end at {args.compare} {i + 1}/{args.repeat}: {res.e2e_mps:,.0f} msg/s")
    return res


async def bench(args: argparse.Namespace, cleanup: Cleanup) -> dict[str, Any]:
    info = await asyncio.to_thread(machine)
    rabbit = await asyncio.to_thread(rabbitmq_pid)
    dead_queue = f"{INBOUND_EXCHANGE}.dead"
    cleanup.dead_queue_existed = await asyncio.to_thread(queue_exists, args.amqp, dead_queue)

    raw: list[RawResult] = []
    raw_items = batched_messages("RAW", args.raw_messages, args.patients)
    for i in range(args.repeat):
        raw.append(await raw_baseline(args.amqp, raw_items, args.window, args.prefetch, cleanup))
        say(f"raw {i + 1}/{args.repeat}: {raw[-1].pipeline_mps:,.0f} msg/s publish+consume")

    trivial: list[float] = []
    for i in range(args.repeat):
        trivial.append(await trivial_throughput(args.amqp, raw_items, args, cleanup))
        say(f"trivial engine {i + 1}/{args.repeat}: {trivial[-1]:,.0f} msg/s")

    receiver = Receiver()
    await receiver.start()
    try:
        throughput, compared, scaled = await throughput_runs(args, receiver, cleanup, rabbit)
        latency: list[LatencyResult] = []
        for i in range(0 if args.skip_latency else args.latency_repeat):
            items = batched_messages(f"L{i}", args.latency_messages, args.patients)
            latency.append(await e2e_latency(args.amqp, receiver, items, args.rate, args, cleanup))
            say(f"latency {i + 1}/{args.latency_repeat}: p99 {latency[-1].p99_ms:,.1f} ms")
        profile: dict[str, Any] | None = None
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            items = batched_messages("P", args.messages, args.patients)
            res, path, seconds = await e2e_throughput(
                args.amqp, receiver, items, args, cleanup, rabbit, profile_to=args.profile
            )
            say(f"profiled run: {res.e2e_mps:,.0f} msg/s")
            if path is not None and path.exists():
                analysed = analyse_profile(path, spy_rate(args), seconds, args.top)
                per_message = 1e6 / spy_rate(args) / max(res.e2e_mps * seconds, 1.0)
                profile = {
                    "file": str(path),
                    "native": args.profile_native,
                    "e2e_mps_under_profiler": res.e2e_mps,
                    "stage_us_per_message": {
                        stage: round(n * per_message, 1)
                        for stage, n in analysed.stage_samples.items()
                    },
                    **asdict(analysed),
                }
    finally:
        await receiver.stop()

    def med(rows: Sequence[Any], attr: str) -> float:
        return median(float(getattr(r, attr)) for r in rows)

    summary = {
        "raw_publish_mps": med(raw, "publish_mps"),
        "raw_consume_mps": med(raw, "consume_mps"),
        "raw_mps": med(raw, "pipeline_mps"),
        "e2e_publish_mps": med(throughput, "publish_mps"),
        "e2e_intake_mps": med(throughput, "intake_mps"),
        "e2e_mps": med(throughput, "e2e_mps"),
        "engine_cpu_pct": med(throughput, "engine_cpu_pct"),
        "engine_main_thread_cpu_pct": med(throughput, "engine_main_thread_cpu_pct"),
        "engine_system_cpu_pct": med(throughput, "engine_system_cpu_pct"),
        "rabbit_cpu_pct": med(throughput, "rabbit_cpu_pct"),
        "bench_cpu_pct": med(throughput, "bench_cpu_pct"),
        "postgres_cpu_pct": med(throughput, "postgres_cpu_pct"),
        "machine_busy_pct": med(throughput, "machine_busy_pct"),
        "ceiling_mps": median(ceiling(r) for r in throughput),
        "engine_peak_rss_mb": max((r.engine_peak_rss_mb for r in throughput), default=math.nan),
    }
    summary["ratio"] = summary["e2e_mps"] / summary["raw_mps"]
    summary["trivial_mps"] = median(trivial)
    summary["trivial_share"] = median(
        r.e2e_mps / x for r, x in zip(throughput, trivial, strict=True)
    )
    summary["compare_mps"] = med(compared, "e2e_mps") if compared else math.nan
    summary["compare_ratio"] = (
        median(a.e2e_mps / b.e2e_mps for a, b in zip(throughput, compared, strict=True))
        if compared
        else math.nan
    )
    summary["replicas_mps"] = med(scaled, "e2e_mps") if scaled else math.nan
    summary["scale_out"] = (
        median(b.e2e_mps / a.e2e_mps for a, b in zip(throughput, scaled, strict=True))
        if scaled
        else math.nan
    )
    for key in ("offered_mps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "to_intake_p50_ms",
                "to_intake_p99_ms", "after_intake_p50_ms", "after_intake_p99_ms"):  # fmt: skip
        summary[key] = med(latency, key)
    store_name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[args.store]
    targets = {
        f"end to end ({store_name}) / trivial engine": {
            "wanted": f">= {TARGET_TRIVIAL_SHARE:g}",
            "measured": fmt(summary["trivial_share"], 3),
            "met": None
            if math.isnan(summary["trivial_share"])
            else summary["trivial_share"] >= TARGET_TRIVIAL_SHARE,
        },
        f"p99 latency at {args.rate:g} msg/s": {
            "wanted": f"< {TARGET_P99_MS:g} ms",
            "measured": f"{fmt(summary['p99_ms'], 1)} ms",
            "met": None if math.isnan(summary["p99_ms"]) else summary["p99_ms"] < TARGET_P99_MS,
        },
    }
    if scaled:
        targets[f"scale-out, {args.replicas} engines / 1 ({store_name})"] = {
            "wanted": f">= {TARGET_SCALE_OUT:g}",
            "measured": fmt(summary["scale_out"], 2),
            "met": summary["scale_out"] >= TARGET_SCALE_OUT,
        }
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return {
        "machine": info,
        "parameters": params,
        "summary": summary,
        "targets": targets,
        "raw": [vars(r) for r in raw],
        "trivial": trivial,
        "compared": [vars(r) for r in compared],
        "replicas": [vars(r) for r in scaled],
        "throughput": [vars(r) for r in throughput],
        "latency": [vars(r) for r in latency],
        "profile": profile,
    }


def run_main(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Cleanup], Coroutine[Any, Any, dict[str, Any]]],
    describe: Callable[[dict[str, Any]], str],
) -> int:
    """Run one benchmark with its cleanup (engine processes, queues, temp dirs) and print it."""
    if not Path(shlex.split(args.engine_command)[0]).exists():
        print(f"no engine command {args.engine_command!r}: pip install -e .", file=sys.stderr)
        return 2
    # The adapters log through structlog (stdout by default): keep stdout for the report.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    cleanup = Cleanup()
    started = time.monotonic()
    try:
        results = asyncio.run(run(args, cleanup))
    finally:
        cleanup.kill_processes()
        for name in list(cleanup.databases):  # interrupted before its run dropped it
            try:
                asyncio.run(drop_database(name))
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"cleanup: could not drop database {name}: {exc!r}", file=sys.stderr)
        dead = None if cleanup.dead_queue_existed else f"{INBOUND_EXCHANGE}.dead"
        try:
            delete_queues(args.amqp, cleanup.queues, dead_queue=dead)
        except pika.exceptions.AMQPError as exc:
            print(f"cleanup: could not delete queues {cleanup.queues}: {exc!r}", file=sys.stderr)
        if args.keep:
            cleanup.keep = list(cleanup.dirs)
        cleanup.remove_dirs()
        if cleanup.keep:
            print(f"kept for inspection: {', '.join(map(str, cleanup.keep))}", file=sys.stderr)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print(describe(results))
    print(f"  (whole run {results['elapsed_s']} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    global TRAFFIC
    args = parse_args(argv)
    TRAFFIC = args.traffic
    ENGINE_PREFETCH[0] = args.engine_prefetch
    return run_main(args, bench, report)


if __name__ == "__main__":
    sys.exit(main())
