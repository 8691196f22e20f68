"""Leases: renewed while a send runs, so a slow but healthy send is never sent twice, however
short the lease; freed at start on SQLite, whose only engine is the one starting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from adapters.webhook import WebhookClient
from engine.config import DeliveryConfig, WebhookDestination
from engine.delivery.loop import DeliveryLoop
from engine.delivery.sending import SendResult
from engine.delivery.webhook import WebhookSender
from engine.store import AttemptRecord, ClaimedDelivery, Delivered, Store
from engine.store.schema import deliveries
from tests.e2e.harness import wait_until
from tests.integration.test_delivery import FAST, Destination, destination, enqueue, statuses

__all__ = ["destination"]  # the fixture, used by name

pytestmark = pytest.mark.integration


async def test_a_send_longer_than_the_lease_is_sent_once(
    store: Store, destination: Destination
) -> None:
    """Two workers share the outbox; the destination takes three leases to answer. Without
    renewal the lease runs out mid-send and the other worker (or the same one) sends again.
    (A 2 s lease, renewed every 0.5 s, rides out event-loop stalls of a loaded machine.)"""
    destination.delay = 6.0
    await enqueue(store, "p", 0)
    client = await WebhookClient().__aenter__()
    config = WebhookDestination(type="webhook", name="dest", url=destination.url,
                                timeout=timedelta(seconds=30), allow_plain_http=True)  # fmt: skip
    lease = DeliveryConfig(concurrency=4, poll_interval=timedelta(milliseconds=50),
                           lease=timedelta(seconds=2))  # fmt: skip
    sender = WebhookSender(config, client.post)
    loops = [DeliveryLoop(store, {"dest": sender}, {"dest": FAST}, {"dest": False}, lease)
             for _ in range(2)]  # fmt: skip
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        await wait_until(lambda: bool(destination.hits), deadline=10, what="the send")
        end = asyncio.get_running_loop().time() + 20
        while (await statuses(store)) != {"ev-p-0": "delivered"}:
            assert asyncio.get_running_loop().time() < end, "never delivered"
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # a lease and a half more: nothing goes again
        assert len(destination.hits) == 1, f"sent {len(destination.hits)} times"
    finally:
        for loop in loops:
            loop.stop()
        await asyncio.gather(*tasks)
        for loop in loops:
            await loop.drain(0)
        await client.close()


async def test_leases_are_freed_at_start_on_sqlite_only(store: Store) -> None:
    await enqueue(store, "p", 0)
    claimed = await store.claim_due(["dest"], limit=5, lease=timedelta(minutes=10), owner="dead")
    assert len(claimed) == 1
    freed = await store.release_leases_at_start()
    async with store.engine.connect() as conn:
        owner = (await conn.execute(sa.select(deliveries.c.lease_owner))).scalar_one()
    if store.engine.dialect.name == "sqlite":
        assert (freed, owner) == (1, None)
        again = await store.claim_due(["dest"], limit=5, lease=timedelta(minutes=10),
                                      owner="new", now=datetime.now(UTC))  # fmt: skip
        assert [d.id for d in again] == [claimed[0].id]
    else:  # a lease on PostgreSQL may be a live replica's
        assert (freed, owner) == (0, "dead")


async def test_renewal_extends_only_the_owners_pending_leases(store: Store) -> None:
    await enqueue(store, "p", 0)
    await enqueue(store, "q", 0)
    first, second = await store.claim_due(["dest"], limit=5, lease=timedelta(seconds=5),
                                          owner="a")  # fmt: skip
    renewed = await store.renew_leases([first.id, second.id], lease=timedelta(minutes=5),
                                       owner="b")  # fmt: skip
    assert renewed == 0, "another owner cannot renew"
    renewed = await store.renew_leases([first.id], lease=timedelta(minutes=5), owner="a")
    assert renewed == 1
    async with store.engine.connect() as conn:
        query = sa.select(deliveries.c.id, deliveries.c.lease_until)
        rows = dict((await conn.execute(query)).all())
    assert rows[first.id] > datetime.now(UTC) + timedelta(minutes=4)
    assert rows[second.id] < datetime.now(UTC) + timedelta(seconds=6)


async def test_a_delivery_reclaimed_by_its_own_engine_is_not_sent_again(
    store: Store, destination: Destination, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store cannot renew leases (stalled), a send outlasts its lease, and the same engine's
    next claim finds its own delivery due: it is still in flight here, so it is not sent a
    second time, and its slot is counted once (an MLLP destination has one)."""

    async def stalled(*_args: object, **_kwargs: object) -> int:
        raise sa.exc.OperationalError("UPDATE deliveries", {}, Exception("store stalled"))

    monkeypatch.setattr(store, "renew_leases", stalled)
    destination.delay = 3.0
    await enqueue(store, "p", 0)
    client = await WebhookClient().__aenter__()
    config = WebhookDestination(type="webhook", name="dest", url=destination.url,
                                timeout=timedelta(seconds=30), allow_plain_http=True)  # fmt: skip
    lease = DeliveryConfig(concurrency=4, poll_interval=timedelta(milliseconds=50),
                           lease=timedelta(milliseconds=500))  # fmt: skip
    loop = DeliveryLoop(store, {"dest": WebhookSender(config, client.post)}, {"dest": FAST},
                        {"dest": False}, lease, caps={"dest": 1})  # fmt: skip
    task = asyncio.create_task(loop.run())
    try:
        end = asyncio.get_running_loop().time() + 20
        while (await statuses(store)) != {"ev-p-0": "delivered"}:
            assert asyncio.get_running_loop().time() < end, "never delivered"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # three leases more: nothing goes again
        assert len(destination.hits) == 1, f"sent {len(destination.hits)} times"
        assert loop._busy["dest"] == 0, "a slot still counted with nothing in flight"
    finally:
        loop.stop()
        await task
        await loop.drain(0)
        await client.close()


FINISHED = ("delivery.outcome_refused", "delivery.delivered")


class OvertakenSender:
    """Its send reaches the destination; meanwhile (its lease having lapsed in a store outage)
    replica B claimed the delivery, sent it too and recorded it delivered."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        later = datetime.now(UTC) + timedelta(minutes=10)
        [b] = await self._store.claim_due([delivery.destination], limit=1, owner="replica-b",
                                          lease=timedelta(minutes=1), now=later)  # fmt: skip
        tried = [AttemptRecord(datetime.now(UTC), 3, "delivered", 200)]
        assert await self._store.finish_delivery(b, tried, Delivered(datetime.now(UTC))) is None
        return SendResult("delivered", 200)


async def test_an_outcome_the_store_refused_is_not_logged_nor_counted_delivered(
    store: Store,
) -> None:
    """Replica B recorded the delivery first: this engine's own 'delivered' is refused (the
    row is no longer pending). It logs why, naming the delivery, and not delivery.delivered;
    the delivered metrics are B's to count."""
    await enqueue(store, "p", 0)
    lease = DeliveryConfig(concurrency=4, poll_interval=timedelta(milliseconds=50),
                           lease=timedelta(minutes=1))  # fmt: skip
    loop = DeliveryLoop(store, {"dest": OvertakenSender(store)}, {"dest": FAST},
                        {"dest": False}, lease)  # fmt: skip
    labels = {"destination": "dest"}
    counted = REGISTRY.get_sample_value("carebridge_intake_to_delivery_seconds_count", labels)
    with capture_logs() as lines:
        task = asyncio.create_task(loop.run())
        try:
            await wait_until(  # refused, or (wrongly) logged delivered
                lambda: any(line["event"] in FINISHED for line in lines),
                deadline=20, what="the outcome recorded or refused",
            )  # fmt: skip
        finally:
            loop.stop()
            await task
            await loop.drain(0)
    assert not [line for line in lines if line["event"] == "delivery.delivered"]
    after = REGISTRY.get_sample_value("carebridge_intake_to_delivery_seconds_count", labels)
    assert after == counted, "a refused outcome counted as delivered"
    [refused] = [line for line in lines if line["event"] == "delivery.outcome_refused"]
    async with store.engine.connect() as conn:
        delivery_id = (await conn.execute(sa.select(deliveries.c.id))).scalar_one()
    assert (refused["delivery_id"], refused["destination"]) == (delivery_id, "dest")
    assert (refused["outcome"], refused["refused_by"]) == ("delivered", "finished")
    assert refused["log_level"] == "warning"
    assert await statuses(store) == {"ev-p-0": "delivered"}
