"""Recovery from SIGKILL in seconds, not a lease: the deliveries a killed engine held are sent by
a live engine within 30 s, and a slow but healthy send is never sent twice.

The engine runs with the default lease (`delivery.lease`, 20 s, renewed every 5 s while a send
runs). A steady stream flows; the destination takes 25 s (more than a lease) to answer one event
of every fourth patient. Once such a send has run for longer than a lease, one engine is killed
(SIGKILL): on SQLite it is restarted, on PostgreSQL its replica carries on alone. Measured: the
recovery time, from the kill to the moment the last delivery the dead engine held reached the
destination again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from mappings.profile import event_id
from tests.adt_factory import patients, stream
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.harness import EngineProcess, wait_until
from tests.e2e.test_end_to_end import assert_clean_logs, assert_per_patient_order
from tests.faults.conftest import MakeEngine
from tests.faults.kit import (
    RECOVERY_BOUND,
    SteadySender,
    TimedReceiver,
    new_source,
    report,
    store_rows,
)
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration

SLOW = 25.0
"""Seconds the destination takes over a slow event: more than the default 20 s lease."""
LEASE = 20.0
DEFAULTS = "poll_interval: 200ms"
"""The fault suite's delivery settings, but the default lease."""


@dataclass
class SlowReceiver(TimedReceiver):
    """Idempotent, timed, noting when each request for a key arrived; `slow(key)` requests are
    answered after SLOW seconds, as a slow but healthy destination would."""

    requests: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    slow: Callable[[str], bool] = lambda _key: False

    async def _handle(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        self.requests[key].append(time.monotonic())
        if self.slow(key):
            await asyncio.sleep(SLOW)
        return await super()._handle(request)


@pytest.fixture
async def receiver() -> AsyncIterator[SlowReceiver]:
    r = SlowReceiver(delay=1.0)  # every answer takes a second: many deliveries in flight
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def lease_owner(engine: EngineProcess) -> str:
    """The name the engine's current run puts on its leases (logged at start)."""
    owners = [record["owner"] for record in map(json.loads, engine.log_lines())
              if record.get("event") == "delivery.started"]  # fmt: skip
    return str(owners[-1])


async def held_by(store_url: str, owner: str) -> set[str]:
    query = ("SELECT idempotency_key FROM deliveries "
             f"WHERE status = 'pending' AND lease_owner = '{owner}'")  # fmt: skip
    return {key for (key,) in await store_rows(store_url, query)}


@dataclass
class Run:
    """One stream with slow events, and what the kill left behind."""

    source: str
    receiver: SlowReceiver
    amqp_url: str
    sender: SteadySender = field(init=False)
    killed_at: float = 0.0
    held: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        traffic = stream(patients(24, run="K"), 16, run="K")
        self.sender = SteadySender(self.amqp_url, self.source, traffic, gap=2.0)
        slow = {f"{event_id(self.source, cid)}.receiver" for _, cid, _ in traffic
                if cid.endswith("-0003") and int(cid.split("-")[1]) % 4 == 0}  # fmt: skip
        self.receiver.slow = slow.__contains__

    async def until_a_slow_send_outlasts_the_lease(self, store_url: str, owners: list[str]) -> None:
        """Until a slow send has run past the lease and the store shows it still leased to one
        of `owners`: the moment to kill. A send that has run 22 s has 4 s left before its
        answer (SLOW plus the receiver's second), so the store is asked, not only the clock."""
        end = time.monotonic() + 90
        while True:
            now = time.monotonic()
            outlasting = {k for k, times in self.receiver.requests.items()
                          if self.receiver.slow(k) and k not in self.receiver.applied
                          and now - times[0] > LEASE + 2}  # fmt: skip
            if outlasting:
                for owner in owners:
                    if outlasting & await held_by(store_url, owner):
                        return
            if now > end:
                raise AssertionError("no slow send ran past the lease while still leased")
            await asyncio.sleep(0.05)

    async def at_kill(self, store_url: str) -> str:
        """What the store and the receiver showed just after the kill, for a failure message."""
        leased = await store_rows(store_url, "SELECT idempotency_key, status, lease_owner "
                                  "FROM deliveries WHERE lease_owner IS NOT NULL")  # fmt: skip
        in_flight = {k: round(self.killed_at - t[0], 1) for k, t in self.receiver.requests.items()
                     if k not in self.receiver.applied}  # fmt: skip
        return f"leased rows {leased}; in flight at the receiver (seconds) {in_flight}"

    def recovery(self) -> float:
        """Seconds from the kill until every held delivery had been sent again."""
        again = [min(t for t in self.receiver.requests[k] if t > self.killed_at)
                 for k in self.held]  # fmt: skip
        return max(again) - self.killed_at

    async def check(self, case: str, store_url: str, live: EngineProcess) -> None:
        keys = self.sender.all_keys()
        await wait_until(lambda: set(self.receiver.applied) >= keys, deadline=150,
                         what=f"{len(keys)} deliveries")  # fmt: skip
        assert_per_patient_order(self.receiver.applied_order())
        assert self.held, "the killed engine held nothing: the case measured nothing"
        twice = {k: len(t) for k, t in self.receiver.requests.items() if len(t) > 1}
        assert set(twice) <= self.held, f"sent twice though not held by the dead engine: {twice}"
        assert max(twice.values(), default=1) <= 2
        slow_sent = [k for k in self.receiver.requests if self.receiver.slow(k)]
        recovery = self.recovery()
        report(case, deliveries=len(keys), held_at_kill=len(self.held),
               slow_sends=len(slow_sent), slow_held=len([k for k in slow_sent if k in self.held]),
               sent_again=len(twice), repeats_dropped_by_receiver=self.receiver.repeats,
               recovery_s=round(recovery, 2))  # fmt: skip
        assert recovery < RECOVERY_BOUND, f"held deliveries sent again after {recovery:.1f}s"
        unsettled = "SELECT count(*) FROM deliveries WHERE status <> 'delivered'"
        left = -1
        deadline = time.monotonic() + 30
        # the receiver has each request before the engine has recorded its answer
        for _ in range(300):
            left = (await store_rows(store_url, unsettled))[0][0]
            if left == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert left == 0
        assert await live.terminate() == 0, live.tail()
        assert_clean_logs(live)


async def test_sqlite_engine_killed_and_restarted_sends_what_it_held_at_once(
    rabbit: RabbitNode, receiver: SlowReceiver, make_engine: MakeEngine
) -> None:
    run = Run(new_source("kill"), receiver, rabbit.url)
    engine = await make_engine([run.source], amqp_url=rabbit.url, delivery=DEFAULTS,
                               webhook_timeout="60s")  # fmt: skip
    store_url = f"sqlite:///{engine.config.parent / 'carebridge.db'}"
    task = asyncio.create_task(run.sender.run(deadline=240))
    try:
        owner = lease_owner(engine)
        await run.until_a_slow_send_outlasts_the_lease(store_url, [owner])
        engine.kill()
        run.killed_at = time.monotonic()
        assert engine.process is not None
        await engine.process.wait()
        run.held = await held_by(store_url, owner)
        assert run.held, f"the killed engine ({owner}) held nothing: {await run.at_kill(store_url)}"
        await engine.start()
        await asyncio.wait_for(task, 240)
        await run.check("SIGKILL, SQLite engine restarted", store_url, engine)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_postgresql_replica_killed_its_deliveries_go_by_the_other(
    rabbit: RabbitNode, receiver: SlowReceiver, make_engine: MakeEngine
) -> None:
    run = Run(new_source("kill"), receiver, rabbit.url)
    database = await create_pg_database()
    store_url = pg_url(database)
    replicas: list[EngineProcess] = []
    try:
        for _ in range(2):
            replicas.append(await make_engine([run.source], amqp_url=rabbit.url,
                                              store_url=store_url, delivery=DEFAULTS,
                                              webhook_timeout="60s"))  # fmt: skip
        task = asyncio.create_task(run.sender.run(deadline=240))
        try:
            owners = [lease_owner(r) for r in replicas]
            await run.until_a_slow_send_outlasts_the_lease(store_url, owners)
            # the replica holding more deliveries is killed
            counts = [len(await held_by(store_url, o)) for o in owners]
            victim = counts.index(max(counts))
            replicas[victim].kill()
            run.killed_at = time.monotonic()
            process = replicas[victim].process
            assert process is not None
            await process.wait()
            run.held = await held_by(store_url, owners[victim])
            assert run.held, f"the killed replica held nothing: {await run.at_kill(store_url)}"
            await asyncio.wait_for(task, 240)
            await run.check("SIGKILL, one of two PostgreSQL replicas", store_url,
                            replicas[1 - victim])  # fmt: skip
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        for replica in replicas:  # before the database goes (make_engine would, but later)
            if replica.process is not None and replica.process.returncode is None:
                replica.kill()
                await replica.process.wait()
        await drop_pg_database(database)
