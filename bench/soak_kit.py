"""The parts of the soak bench (`bench/soak.py`): endless per-patient traffic, a paced publisher
with confirms, a webhook receiver that checks keys and order, the engine as a restartable
subprocess on one store, the faults, and the per-minute samples (RSS, FDs, queue depth).

Everything talks to 127.0.0.1 only. The broker fault closes the engine's own connections, found
by the engine's pid: the local ports of its sockets to the broker, matched against the peer ports
RabbitMQ lists in the run's vhost; nobody else's connection is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shlex
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from aiohttp import web

from adapters.errors import TransportError
from adapters.rabbitmq import INBOUND_EXCHANGE, Broker
from bench.end_to_end import AMQP_URL_ENV, LocalWebhook, free_port, stop_process, wait_ready
from tests.adt_factory import Patient, adt

ENGINE_CONNECTION_PREFIX = "carebridge-"
"""The engine names its broker connections `carebridge-intake` and `carebridge-publish`
(engine/app.py)."""


# ---- traffic -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    patient: int
    step: int
    cid: str
    body: bytes


def parse_cid(cid: str) -> tuple[int, int] | None:
    """`<run>-<patient>-<step>` -> (patient, step); None for an id this bench did not make."""
    parts = cid.split("-")
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def traffic(run: str, people: list[Patient], cycle: int = 10) -> Iterator[Planned]:
    """Endless interleaved ADT: each patient in turn is admitted, transferred `cycle - 2` times,
    discharged, and admitted again for a new stay (its own visit number). Messages are made as
    they are drawn, stamped with the time of drawing, so a discharge's follow-up is not overdue
    at once. Control ids `<run>-<patient>-<step>` (at most 18 characters with a 5-character
    run) sort in each patient's event order."""
    for step in itertools.count():
        phase, stay = step % cycle, step // cycle
        trigger = "A01" if phase == 0 else "A03" if phase == cycle - 1 else "A02"
        ward, prior = f"WARD{phase % 7 + 1}", f"WARD{(phase - 1) % 7 + 1}"
        for i, patient in enumerate(people):
            cid = f"{run}-{i:05d}-{step:06d}"
            body = adt(trigger, patient, cid, datetime.now(UTC), ward=ward,
                       prior_ward=prior if trigger == "A02" else None)  # fmt: skip
            visit = f"|V{patient.mrn}|".encode()
            yield Planned(i, step, cid, body.replace(visit, visit[:-1] + f"S{stay}|".encode()))


# ---- the paced publisher -----------------------------------------------------------------------


@dataclass
class PacedPublisher:
    """Publishes at `rate` messages/s with confirms, retrying each message until confirmed. A
    patient's next message waits until its previous one is confirmed (a lane per patient), so
    retries never reorder a patient's events. Only confirmed messages count as published."""

    broker: Broker
    source: str
    rate: float
    confirmed: dict[str, float] = field(default_factory=dict)
    """Control id -> monotonic time of its confirm."""
    failures: Counter[str] = field(default_factory=Counter)
    offered: int = 0
    max_lag_s: float = 0.0
    """The furthest the schedule fell behind (the bench itself could not keep the pace)."""

    async def _one(self, item: Planned, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait({before})
        headers: dict[str, str | int | float | bool | bytes | None] = {"source": self.source}
        while True:
            try:
                await self.broker.publish(INBOUND_EXCHANGE, self.source, item.body,
                                          headers=headers, message_id=item.cid)  # fmt: skip
            except TransportError as exc:
                self.failures[type(exc).__name__] += 1
                await asyncio.sleep(0.2)
                continue
            self.confirmed[item.cid] = time.monotonic()
            return

    async def run(self, items: Iterator[Planned], seconds: float) -> None:
        lanes: dict[int, asyncio.Task[None]] = {}
        pending: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        for i in itertools.count():
            due = start + i / self.rate
            if due >= start + seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.max_lag_s = max(self.max_lag_s, -delay)
            item = next(items)
            task = asyncio.create_task(self._one(item, lanes.get(item.patient)))
            lanes[item.patient] = task
            pending.add(task)
            task.add_done_callback(pending.discard)
            self.offered += 1
        if pending:
            await asyncio.wait(set(pending))


# ---- the receiver ------------------------------------------------------------------------------


@dataclass
class SoakReceiver(LocalWebhook):
    """The webhook destination. Answers 503 while `refuse_until` (monotonic) is in the future;
    otherwise 200, noting per control id its first arrival, and per Idempotency-Key every repeat.
    Order: a patient's first arrivals must come in step order (a repeat of an old event, which a
    receiver deduplicating by key drops, is counted apart as `late_repeats`)."""

    refuse_until: float = 0.0
    refused: int = 0
    first: dict[str, float] = field(default_factory=dict)
    """Control id -> monotonic time of its first arrival."""
    key_of: dict[str, str] = field(default_factory=dict)
    repeat_at: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, Idempotency-Key) of each arrival of a key seen before."""
    new_key_same_cid: int = 0
    """A control id arriving under a second key: intake would have made two events of one."""
    reorders: list[str] = field(default_factory=list)
    late_repeats: int = 0
    foreign: int = 0
    _last_step: dict[int, int] = field(default_factory=dict)

    async def _handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        body = await request.read()
        now = time.monotonic()
        if now < self.refuse_until:
            self.refused += 1
            return web.Response(status=503, text="soak: destination unavailable")
        cid = str(orjson.loads(body)["source"]["message_id"])
        parsed = parse_cid(cid)
        if parsed is None:
            self.foreign += 1
            return web.Response(status=200, text="ok")
        patient, step = parsed
        if cid in self.first:
            if self.key_of[cid] == key:
                self.repeat_at.append((now, key))
            else:
                self.new_key_same_cid += 1
            if step < self._last_step.get(patient, -1):
                self.late_repeats += 1
            return web.Response(status=200, text="ok")
        self.first[cid], self.key_of[cid] = now, key
        if step < self._last_step.get(patient, -1):
            self.reorders.append(f"{cid} after step {self._last_step[patient]}")
        else:
            self._last_step[patient] = step
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        await self.serve({"/events": self._handle})


# ---- the engine --------------------------------------------------------------------------------


SOAK_YAML = """
amqp: {{url: "${{{amqp_env}}}", prefetch: 200}}
store: {{url: "{store}"}}
http: {{host: 127.0.0.1, port: {port}}}
retry_policies:
  default: {{initial_backoff: 1s, max_backoff: 10s}}
sources:
  - {{name: {source}, care_setting: mental_health}}
destinations:
  - {{name: receiver, type: webhook, url: "{receiver}", timeout: 10s, allow_plain_http: true}}
routes:
  - {{name: all, to: [receiver]}}
{extra}
"""


@dataclass
class SoakEngine:
    """One engine config and store; started, SIGKILLed and started again on the same store.
    Each start logs to a file of its own (`engine-<n>.log`)."""

    tmp: Path
    source: str
    amqp_url: str
    command: str
    store_url: str
    receiver_url: str
    extra: str = ""
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    runs: list[Path] = field(default_factory=list)
    exits: list[int | None] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.tmp / "carebridge.yaml"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        if not self.config.exists():
            self.config.write_text(SOAK_YAML.format(
                amqp_env=AMQP_URL_ENV, store=self.store_url, port=self.port, source=self.source,
                receiver=self.receiver_url, extra=self.extra))  # fmt: skip
        path = self.tmp / f"engine-{len(self.runs) + 1}.log"
        self.runs.append(path)
        with path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *shlex.split(self.command), "run", "-c", str(self.config),
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                env={**os.environ, AMQP_URL_ENV: self.amqp_url},
            )  # fmt: skip
        await wait_ready(self.process, self.port, deadline=120.0)

    async def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.exits.append(await self.process.wait())

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit status."""
        assert self.process is not None
        await stop_process(self.process, signal.SIGTERM, 30)
        self.exits.append(self.process.returncode)
        return self.process.returncode

    def log_summary(self) -> dict[str, Any]:
        """Over every run: lines at warning or above by event name, the info events a fault
        leaves (`COUNTED`), and exceptions (tracebacks)."""
        events: Counter[str] = Counter()
        exceptions = 0
        for path in self.runs:
            for line in path.read_bytes().splitlines() if path.exists() else []:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    events["(not JSON)"] += 1
                    continue
                if not isinstance(record, dict):
                    continue
                exceptions += "exception" in record
                if record.get("level") in ("warning", "error", "critical"):
                    events[f"{record.get('level')}: {record.get('event')}"] += 1
                elif record.get("event") in COUNTED:
                    events[str(record["event"])] += 1
        return {"exceptions": exceptions, "events": dict(events.most_common())}


COUNTED = frozenset({"intake.duplicate", "delivery.leases_freed_at_start", "amqp.connected"})
"""Info events worth a count: broker redeliveries intake dropped as duplicates, leases a restart
freed, and (re)connections."""


# ---- process and broker figures ----------------------------------------------------------------


def proc_figures(pid: int) -> tuple[float, int, int]:
    """(RSS in MB, open file descriptors, threads) of a live process; NaN/-1 if gone."""
    rss, threads = float("nan"), -1
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return rss, -1, threads
    return rss, fds, threads


def rabbitmqctl_json(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["rabbitmqctl", "-q", *args, "--formatter", "json"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]}: {out.stderr.strip()[:200]}")
    data = json.loads(out.stdout or "[]")
    return data if isinstance(data, list) else []


def vhost_of(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def queue_depth(vhost: str, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of one queue; (-1, -1) if it cannot be read."""
    try:
        rows = rabbitmqctl_json("list_queues", "-p", vhost, "name", "messages_ready",
                                "messages_unacknowledged")  # fmt: skip
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError):
        return -1, -1
    for row in rows:
        if row.get("name") == queue:
            return int(row["messages_ready"]), int(row["messages_unacknowledged"])
    return -1, -1


def broker_ports(pid: int, broker_port: int) -> set[int]:
    """Local ports of the process's TCP sockets connected to `broker_port`."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == broker_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def connection_pids(vhost: str) -> dict[int, str]:
    """Peer port -> RabbitMQ connection pid (as `close_connection` takes it) in one vhost."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "vhost", "peer_port"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    found = {}
    for line in out.stdout.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) == 3 and cols[1] == vhost and cols[2].isdigit():
            found[int(cols[2])] = cols[0]
    return found


def engine_connections(pid: int, amqp_url: str) -> list[tuple[str, str]]:
    """(RabbitMQ connection pid, description) of the engine's connections: in the run's vhost,
    named by the engine (client-provided name), and from one of the engine process's sockets."""
    vhost = vhost_of(amqp_url)
    ports = broker_ports(pid, urlsplit(amqp_url).port or 5672)
    rows = rabbitmqctl_json("list_connections", "name", "vhost", "peer_port", "client_properties")
    pids = connection_pids(vhost)
    found = []
    for row in rows:
        props = row.get("client_properties") or []
        named = [str(p[2]) for p in props if isinstance(p, list) and p[:1] == ["connection_name"]]
        ours = bool(named) and named[0].startswith(ENGINE_CONNECTION_PREFIX)
        port = row.get("peer_port")
        if row.get("vhost") == vhost and port in ports and ours and port in pids:
            found.append((pids[port], f"{row['name']} ({named[0]})"))
    return found


def close_connections(connections: list[tuple[str, str]]) -> int:
    """Close connections found by `engine_connections`; returns how many rabbitmqctl closed."""
    closed = 0
    for connection_pid, _ in connections:
        command = ["rabbitmqctl", "-q", "close_connection", connection_pid, "soak fault"]
        out = subprocess.run(command, capture_output=True, timeout=60, check=False)
        closed += out.returncode == 0
    return closed
