"""How intake takes from the broker: batches, redeliveries one at a time, stop mid-batch.

Intake runs against both real stores and the in-memory broker double (held to the real
adapter's contract in tests/contract/test_broker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from engine.config import parse_config
from engine.intake import Intake
from engine.store import History, IntakeRecord, Store
from engine.store import schema as tables
from tests.adt_factory import adt, patients
from tests.e2e.harness import wait_until
from tests.memory_broker import MemoryBroker
from tests.store.test_write import fail_every_commit

pytestmark = pytest.mark.integration

CONFIG = parse_config(
    """
sources: [{name: mh, care_setting: mental_health}]
destinations: [{name: team, type: webhook, url: "https://team.example/x"}]
routes: [{name: all, match: {kinds: [admission, discharge]}, to: [team]}]
""",
    env={},
)
QUEUE = "carebridge.inbound.mh"
Link = Callable[[History], Sequence[IntakeRecord]]
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def messages(n: int) -> list[bytes]:
    return [adt("A01", p, f"ADM{i}", T0) for i, p in enumerate(patients(n))]


def counted(link: Link, sizes: list[int]) -> Link:
    """`link`, noting the size of the batch it gives the store to write."""

    def counting(history: History) -> Sequence[IntakeRecord]:
        records = link(history)
        sizes.append(len(records))
        return records

    return counting


def record_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch intake writes to the store."""
    sizes: list[int] = []
    record = store.link_and_record

    async def spy(link: Link, **kwargs: Any) -> Any:
        return await record(counted(link, sizes), **kwargs)

    monkeypatch.setattr(store, "link_and_record", spy)
    return sizes


async def test_what_has_arrived_is_one_batch_and_one_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = record_batches(store, monkeypatch)
    broker = MemoryBroker([QUEUE])
    deliveries = await broker.subscribe([QUEUE])
    for body in messages(5):
        broker.send(QUEUE, body)
    intake = Intake(store, CONFIG, deliveries, {QUEUE: "mh"})
    assert intake.backlog == 5
    task = asyncio.create_task(intake.run())
    await wait_until(lambda: broker.depth(QUEUE) == 0)
    intake.stop()
    await task
    assert sizes == [5]
    assert broker.dead == []


async def test_redelivered_messages_are_committed_one_at_a_time_as_suspects(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = record_batches(store, monkeypatch)
    marked: list[str] = []
    mark = store.mark_suspect

    async def spy_mark(source: str, digest: str) -> None:
        marked.append(source)
        await mark(source, digest)

    monkeypatch.setattr(store, "mark_suspect", spy_mark)
    broker = MemoryBroker([QUEUE])
    deliveries = await broker.subscribe([QUEUE])
    for body in messages(3):
        broker.send(QUEUE, body)
    broker.lose_connection()  # as if an engine had died holding them: all three redelivered
    intake = Intake(store, CONFIG, deliveries, {QUEUE: "mh"})
    task = asyncio.create_task(intake.run())
    await wait_until(lambda: broker.depth(QUEUE) == 0)
    intake.stop()
    await task
    assert sizes == [1, 1, 1]
    assert marked == ["mh", "mh", "mh"]
    assert broker.dead == []


async def test_stop_finishes_the_batch_in_hand_and_leaves_the_rest_unacked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, release = asyncio.Event(), asyncio.Event()
    record = store.link_and_record

    async def held(link: Link, **kwargs: Any) -> Any:
        writing.set()
        await release.wait()
        return await record(link, **kwargs)

    monkeypatch.setattr(store, "link_and_record", held)
    broker = MemoryBroker([QUEUE])
    deliveries = await broker.subscribe([QUEUE])
    first, *rest = messages(3)
    broker.send(QUEUE, first)
    intake = Intake(store, CONFIG, deliveries, {QUEUE: "mh"})
    task = asyncio.create_task(intake.run())
    async with asyncio.timeout(20):
        await writing.wait()
    for body in rest:
        broker.send(QUEUE, body)
    intake.stop()
    release.set()
    async with asyncio.timeout(20):
        await task
    assert broker.depth(QUEUE) == 2  # the first was acked after its commit; two wait unacked
    assert intake.backlog == 2
    assert broker.dead == []


async def test_the_next_batch_is_written_only_after_the_one_before_in_arrival_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 2 is taken (and parsed) while batch 1 is written, but its write starts only once
    batch 1's has returned, so the message log keeps the order of arrival."""
    entered: list[int] = []
    written: list[int] = []
    release = asyncio.Event()
    record = store.link_and_record

    async def held_first(link: Link, **kwargs: Any) -> Any:
        entered.append(len(entered) + 1)
        if len(entered) == 1:
            await release.wait()
        return await record(counted(link, written), **kwargs)

    monkeypatch.setattr(store, "link_and_record", held_first)
    broker = MemoryBroker([QUEUE])
    deliveries = await broker.subscribe([QUEUE])
    first, *rest = messages(4)
    broker.send(QUEUE, first)
    intake = Intake(store, CONFIG, deliveries, {QUEUE: "mh"})
    task = asyncio.create_task(intake.run())
    await wait_until(lambda: entered == [1])  # the first write called, and held
    for body in rest:
        broker.send(QUEUE, body)
    await wait_until(lambda: intake.backlog == 0)  # batch 2 taken while batch 1 is held
    await asyncio.sleep(0.05)
    assert entered == [1]  # ... and not written yet
    assert written == []
    assert broker.depth(QUEUE) == 4  # nothing acked before its commit
    release.set()
    await wait_until(lambda: broker.depth(QUEUE) == 0)
    intake.stop()
    async with asyncio.timeout(20):
        await task
    assert written == [1, 3]
    async with store.engine.connect() as conn:
        keys = (await conn.execute(sa.select(tables.messages.c.message_key)
                                   .order_by(tables.messages.c.id))).scalars().all()  # fmt: skip
    assert keys == ["ADM0", "ADM1", "ADM2", "ADM3"]


async def test_a_write_that_fails_ends_intake_at_once_not_at_the_next_batch(
    store: Store,
) -> None:
    """The write runs as a task beside the next batch's parsing; if it fails, `run` ends with
    that failure straight away (the engine then stops and is restarted), rather than when a
    next message happens to arrive, perhaps an hour later, with the batch unacked meanwhile."""

    def broken() -> None:
        raise RuntimeError("after the commit")

    broker = MemoryBroker([QUEUE])
    deliveries = await broker.subscribe([QUEUE])
    broker.send(QUEUE, messages(1)[0])
    intake = Intake(store, CONFIG, deliveries, {QUEUE: "mh"}, on_committed=broken)
    task = asyncio.create_task(intake.run())
    done, _ = await asyncio.wait({task}, timeout=20)  # no second message is ever sent
    if not done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        pytest.fail("intake still waited for the next batch after its write failed")
    with pytest.raises(RuntimeError, match="after the commit"):
        task.result()


async def test_a_batch_whose_commit_fails_is_never_acked(store: Store) -> None:
    """Every commit that writes a message row fails at COMMIT itself (a deferred constraint):
    the batch, then each message alone, then even its rejection stub fail, so each message is
    parked in the broker's dead-letter queue (nacked, not acked) and the store holds nothing."""
    await fail_every_commit(store)
    broker = MemoryBroker([QUEUE])
    deliveries = await broker.subscribe([QUEUE])
    bodies = messages(3)
    for body in bodies:
        broker.send(QUEUE, body)
    intake = Intake(store, CONFIG, deliveries, {QUEUE: "mh"})
    task = asyncio.create_task(intake.run())
    await wait_until(lambda: broker.depth(QUEUE) == 0)
    intake.stop()
    await task
    assert sorted(m.body for m in broker.dead) == sorted(bodies)
    assert await store.counts() == {}
