"""What every fault case shares: config, a timed idempotent receiver, a steady confirmed
sender that retries, and the pass criterion (delivered, once, in order, clean, recovered)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from adapters.errors import TransportError
from adapters.rabbitmq import AmqpSettings, Broker
from mappings.profile import event_id
from tests.adt_factory import Patient
from tests.e2e.harness import EngineProcess, Receiver, wait_until, write_config
from tests.e2e.test_end_to_end import assert_clean_logs, assert_per_patient_order

RECOVERY_BOUND = 30.0
"""Seconds after a fault ends by which the engine must have caught up."""

Traffic = list[tuple[Patient, str, bytes]]


def new_source(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fault_config(
    folder: Path,
    sources: list[str],
    receiver_url: str,
    *,
    http_port: int,
    amqp_url: str | list[str],
    store_url: str | None = None,
    source_extra: str = "",
    destinations_extra: str = "",
    route_to: str = "[receiver]",
    extra: str = "",
    webhook_timeout: str = "2s",
    amqp_extra: str = "",
    delivery: str = "poll_interval: 200ms, lease: 5s",
    store_extra: str = "",
) -> Path:
    """Outages and backoffs scaled down: 2 s heartbeats, ms backoffs, a 5 s lease (`delivery`
    replaces the whole `delivery:` mapping)."""
    store = store_url or f"sqlite+aiosqlite:///{folder / 'carebridge.db'}"
    lines = "\n".join(
        f"  - {{name: {s}, care_setting: mental_health{source_extra}}}" for s in sources
    )
    nodes = [amqp_url] if isinstance(amqp_url, str) else amqp_url
    refs = [f"${{CB_TEST_AMQP_URL_{i}}}" for i in range(len(nodes))]
    amqp_refs = json.dumps(refs[0] if isinstance(amqp_url, str) else refs)
    text = f"""
amqp: {{url: {amqp_refs}, prefetch: 200, heartbeat: 2s, confirm_timeout: 3s{amqp_extra}}}
store: {{url: "${{CB_TEST_STORE_URL}}"{store_extra}}}
http: {{host: 127.0.0.1, port: {http_port}}}
delivery: {{{delivery}}}
shutdown: {{deadline: 5s}}
retry_policies:
  default: {{quick_attempts: 2, quick_wait: 50ms, initial_backoff: 200ms, max_backoff: 1s,
            max_age: 10m}}
sources:
{lines}
destinations:
  - {{name: receiver, type: webhook, url: "{receiver_url}", timeout: {webhook_timeout},
     allow_plain_http: true}}
{destinations_extra}
routes:
  - {{name: all, to: {route_to}}}
{extra}
"""
    env = {f"CB_TEST_AMQP_URL_{i}": url for i, url in enumerate(nodes)}
    env["CB_TEST_STORE_URL"] = store
    return write_config(folder / "carebridge.yaml", text, env)


@dataclass
class TimedReceiver(Receiver):
    """The harness's idempotent receiver, noting when each key was first applied.

    `after_apply(key)` runs once a request has been applied and may lose the answer (hang past
    the engine's timeout, or drop the connection): the "commits, then loses its response" fault.
    """

    applied_at: dict[str, float] = field(default_factory=dict)
    after_apply: Callable[[str, web.Request], Awaitable[None]] | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        key = request.headers["Idempotency-Key"]
        if key in self.applied and key not in self.applied_at:
            self.applied_at[key] = time.monotonic()
        if response.status == 200 and self.after_apply is not None:
            await self.after_apply(key, request)
        return response

    def event_ids(self) -> set[str]:
        return {r.event["event_id"] for r in self.applied_order()}


@dataclass
class SteadySender:
    """Publishes a stream with confirms, one lane per patient (a patient's next message only
    after the previous one is confirmed), retrying each message until it is confirmed. Only a
    confirmed message counts as acknowledged to the sender."""

    url: str
    source: str
    traffic: Traffic
    gap: float = 0.5
    alternates: tuple[str, ...] = ()
    """Other nodes of the broker's cluster, tried in turn after `url`."""
    """Seconds between two messages of one patient."""
    confirmed_at: dict[str, float] = field(default_factory=dict)
    refusals: int = 0
    refusal_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    running: asyncio.Event = field(default_factory=asyncio.Event)
    """Cleared: every lane waits before its next message (a pause); set when `run` starts."""

    async def run(self, deadline: float = 150.0) -> None:
        end = time.monotonic() + deadline
        settings = AmqpSettings(
            url=self.url, alternates=self.alternates,
            connection_name=f"fault-sender-{self.source}", heartbeat=2,
            confirm_timeout=3.0, connect_timeout=3.0, reconnect_initial_delay=0.2,
            reconnect_max_delay=1.0,
        )  # fmt: skip
        lanes: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
        for patient, control_id, body in self.traffic:
            lanes[patient.nhs_number].append((control_id, body))
        self.running.set()
        async with Broker(settings) as broker:

            async def lane(index: int, messages: list[tuple[str, bytes]]) -> None:
                await asyncio.sleep(self.gap * index / len(lanes))
                for control_id, body in messages:
                    await self.running.wait()
                    while True:
                        if time.monotonic() > end:
                            raise AssertionError(f"{control_id} never confirmed")
                        try:
                            await broker.publish(
                                "carebridge.inbound", self.source, body, message_id=control_id
                            )
                        except TransportError as exc:
                            self.refusals += 1
                            self.refusal_kinds[type(exc).__name__] += 1
                            await asyncio.sleep(0.2)
                            continue
                        self.confirmed_at[control_id] = time.monotonic()
                        break
                    await asyncio.sleep(self.gap)

            await asyncio.gather(*(lane(i, m) for i, m in enumerate(lanes.values())))

    def confirmed_keys(self, destination: str = "receiver") -> dict[str, float]:
        return {
            f"{event_id(self.source, cid)}.{destination}": at
            for cid, at in self.confirmed_at.items()
        }

    def all_keys(self, destination: str = "receiver") -> set[str]:
        return {f"{event_id(self.source, cid)}.{destination}" for _, cid, _ in self.traffic}


@dataclass
class Window:
    """When a fault began and ended (monotonic seconds)."""

    start: float = field(default_factory=time.monotonic)
    end: float | None = None

    def close(self) -> None:
        self.end = time.monotonic()


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking call (rabbitmqctl, pg_ctl) without stalling the receiver and sender."""
    return await asyncio.to_thread(fn, *args)


async def run_until(task: asyncio.Task[None], deadline: float, what: str) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), deadline)
    except TimeoutError:
        raise AssertionError(f"timed out after {deadline:g}s waiting for {what}") from None


async def store_rows(store_url: str, query: str) -> list[tuple[Any, ...]]:
    if store_url.startswith("sqlite"):
        path = store_url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            return list(conn.execute(query).fetchall())
    conn = await asyncpg.connect(store_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(query)]
    finally:
        await conn.close()


def report(case: str, **facts: Any) -> None:
    """One JSON line per case: on stdout (pytest -rP) and in $CB_FAULTS_REPORT if set."""
    line = json.dumps({"case": case, **facts}, default=str)
    print(line)
    target = os.environ.get("CB_FAULTS_REPORT")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")


async def verify(
    case: str,
    engine: EngineProcess,
    receiver: TimedReceiver,
    senders: list[SteadySender],
    window: Window,
    *,
    store_url: str,
    dead: set[str] | frozenset[str] = frozenset(),
    deadline: float = 90.0,
    other_confirmed: dict[str, float] | None = None,
    other_sent: set[str] | None = None,
    **facts: Any,
) -> dict[str, Any]:
    """The pass criterion of every case; returns (and reports) the measured recovery."""
    assert window.end is not None, "the fault never ended"
    confirmed: dict[str, float] = {}
    everything: set[str] = set()
    for sender in senders:
        confirmed |= sender.confirmed_keys()
        everything |= sender.all_keys()
    confirmed |= other_confirmed or {}
    everything |= set(other_confirmed or {}) | (other_sent or set())
    wanted = set(confirmed) - dead
    await wait_until(lambda: set(receiver.applied) >= wanted, deadline=deadline,
                     what=f"{len(wanted)} confirmed messages delivered")  # fmt: skip
    # caught up: every message confirmed before the fault ended has been applied
    before_end = [receiver.applied_at[k] for k, at in confirmed.items()
                  if at <= window.end and k in wanted]  # fmt: skip
    caught_up = max([0.0, *(t - window.end for t in before_end)])
    # resumed: the first message that needed intake after the fault began, applied after it ended
    later = [receiver.applied_at[k] for k, at in confirmed.items()
             if at >= window.start and k in wanted
             and receiver.applied_at[k] >= window.end]  # fmt: skip
    resumed = max(0.0, min(later) - window.end) if later else 0.0
    facts = {
        "messages": len(everything),
        "confirmed": len(confirmed),
        "applied": len(receiver.applied),
        "repeats_dropped_by_receiver": receiver.repeats,
        "sender_refusals": sum(s.refusals for s in senders),
        "fault_s": round(window.end - window.start, 2),
        "resumed_s": round(resumed, 2),
        "caught_up_s": round(caught_up, 2),
        **facts,
    }
    phantom = set(receiver.applied) - everything - dead
    assert not phantom, f"deliveries nobody sent: {sorted(phantom)[:5]}"
    assert_per_patient_order(receiver.applied_order())
    # settled: nothing pending any more (a lost response is re-sent before this holds)
    unsettled = "SELECT count(*) FROM deliveries WHERE status NOT IN ('delivered', 'dead')"
    end = time.monotonic() + deadline
    while (await store_rows(store_url, unsettled))[0][0]:
        assert time.monotonic() < end, "deliveries still pending"
        await asyncio.sleep(0.2)
    facts["repeats_dropped_by_receiver"] = receiver.repeats
    assert await engine.terminate() == 0, engine.tail()
    found_dead = {k for (k,) in await store_rows(
        store_url, "SELECT idempotency_key FROM deliveries WHERE status = 'dead'")}  # fmt: skip
    facts["dead_letters"] = len(found_dead)
    facts["log_exceptions"] = sum('"exception"' in line for line in engine.log_lines())
    report(case, **facts)
    assert found_dead == set(dead), f"dead letters: {sorted(found_dead)} != {sorted(dead)}"
    assert resumed <= RECOVERY_BOUND, f"work resumed {resumed:.1f}s after the fault ended"
    assert caught_up <= RECOVERY_BOUND, f"caught up {caught_up:.1f}s after the fault ended"
    assert_clean_logs(engine)  # last: a traceback in the log must not hide a data failure
    return facts
