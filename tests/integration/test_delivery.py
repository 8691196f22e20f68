"""The delivery loop against a real HTTP receiver and both real stores."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web

from adapters.webhook import WebhookClient
from engine import logs
from engine.config import DeliveryConfig, RetryPolicy, StoreConfig, WebhookDestination
from engine.delivery.http import SIGNATURE_HEADER
from engine.delivery.loop import DeliveryLoop
from engine.delivery.webhook import WebhookSender
from engine.store import AcceptedEvent, ClaimedDelivery, IntakeRecord, Store
from engine.store.schema import attempts, deliveries
from tests.e2e.harness import free_port, wait_until

pytestmark = pytest.mark.integration

FAST = RetryPolicy(
    quick_attempts=2,
    quick_wait=timedelta(milliseconds=10),
    initial_backoff=timedelta(milliseconds=100),
    max_backoff=timedelta(milliseconds=300),
    max_age=timedelta(minutes=5),
)


@dataclass
class Hit:
    key: str
    patient: str
    seq: int
    signature: str | None
    body: bytes


@dataclass
class Destination:
    """A receiver whose answer per request the test decides."""

    answer: Callable[[Hit], int] = lambda _hit: 200
    delay: float = 0.0
    delay_for: Callable[[Hit], float] | None = None
    """Seconds each request takes, per request (overrides `delay`)."""
    hits: list[Hit] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        hit = Hit(request.headers["Idempotency-Key"], body["patient"], body["seq"],
                  request.headers.get(SIGNATURE_HEADER), raw)  # fmt: skip
        self.hits.append(hit)
        delay = self.delay_for(hit) if self.delay_for else self.delay
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=self.answer(hit), text="answer")


@pytest.fixture
async def destination() -> AsyncIterator[Destination]:
    dest = Destination()
    app = web.Application()
    app.router.add_post("/", dest.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    dest.url = f"http://127.0.0.1:{port}/"
    yield dest
    await runner.cleanup()


async def enqueue(store: Store, patient: str, seq: int) -> None:
    body = json.dumps({"patient": patient, "seq": seq})
    await store.record_intake([IntakeRecord(
        source="s", payload=body.encode(), received_at=datetime.now(UTC), format="hl7v2",
        message_key=f"{patient}-{seq}",
        accepted=AcceptedEvent(event_id=f"ev-{patient}-{seq}", kind="discharge",
                               care_setting="mental_health", patient_key=patient,
                               occurred_at=None, body=body, destinations=(("dest", False),)),
    )])  # fmt: skip


@dataclass
class Running:
    loop: DeliveryLoop
    task: asyncio.Task[None]
    client: WebhookClient

    async def stop(self, drain: float = 5) -> None:
        self.loop.stop()
        await self.task
        await self.loop.drain(drain)
        await self.client.close()


SECRET = "a-shared-webhook-secret-32-chars"


async def start_loop(
    store: Store, url: str, *, policy: RetryPolicy = FAST, secret: str | None = None,
    answer_within: float = 5.0, hold: bool = False, concurrency: int = 8,
    poll_interval: timedelta = timedelta(milliseconds=50), cap: int | None = None,
) -> Running:  # fmt: skip
    client = await WebhookClient().__aenter__()
    config = WebhookDestination(type="webhook", name="dest", url=url, secret=secret,
                                timeout=timedelta(seconds=answer_within),
                                allow_plain_http=True)  # fmt: skip
    loop = DeliveryLoop(
        store, {"dest": WebhookSender(config, client.post)}, {"dest": policy}, {"dest": hold},
        DeliveryConfig(concurrency=concurrency, poll_interval=poll_interval),
        caps=None if cap is None else {"dest": cap},
    )  # fmt: skip
    return Running(loop, asyncio.create_task(loop.run()), client)


async def statuses(store: Store) -> dict[str, str]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(deliveries.c.event_id, deliveries.c.status))
        return {r.event_id: r.status for r in rows}


async def test_transient_failures_are_retried_until_delivered(
    store: Store, destination: Destination
) -> None:
    failures = iter([503, 429])
    destination.answer = lambda _hit: next(failures, 200)
    await enqueue(store, "p1", 1)
    running = await start_loop(store, destination.url)
    await wait_until(lambda: len(destination.hits) >= 3, what="three tries")
    await running.stop()
    assert await statuses(store) == {"ev-p1-1": "delivered"}
    assert {h.key for h in destination.hits} == {"ev-p1-1.dest"}
    async with store.engine.connect() as conn:
        codes = [r.status_code for r in await conn.execute(
            sa.select(attempts.c.status_code).order_by(attempts.c.id))]  # fmt: skip
    assert codes == [503, 429, 200]


async def test_a_delivery_s_log_lines_name_it_and_never_its_content(
    store: Store, destination: Destination
) -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    destination.answer = lambda _hit: 422
    await enqueue(store, "p1", 1)
    running = await start_loop(store, destination.url)
    await wait_until(lambda: '"delivery.dead_lettered"' in stream.getvalue(), what="dead letter")
    await running.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [dead] = [r for r in lines if r["event"] == "delivery.dead_lettered"]
    assert dead["event_id"] == "ev-p1-1"
    assert dead["destination"] == "dest"
    assert dead["event_kind"] == "discharge"
    assert isinstance(dead["delivery_id"], int)
    assert dead["status_code"] == 422
    assert "p1" not in json.dumps({k: v for k, v in dead.items() if k != "event_id"})
    assert "answer" not in stream.getvalue()  # the destination's answer stays in the store


async def test_a_failing_patient_never_holds_up_the_others(
    store: Store, destination: Destination
) -> None:
    destination.answer = lambda hit: 503 if hit.patient == "stuck" else 200
    for seq in range(3):
        await enqueue(store, "stuck", seq)
        await enqueue(store, "fine", seq)
    running = await start_loop(store, destination.url)
    await wait_until(lambda: len([h for h in destination.hits if h.patient == "fine"]) == 3)
    await running.stop()
    fine = [h.seq for h in destination.hits if h.patient == "fine"]
    assert fine == [0, 1, 2]
    # The stuck patient's later events wait behind its first: order is never broken.
    assert {h.seq for h in destination.hits if h.patient == "stuck"} == {0}
    found = await statuses(store)
    assert found["ev-stuck-0"] == found["ev-stuck-1"] == "pending"


async def test_permanent_refusal_dead_letters_and_later_events_flow(
    store: Store, destination: Destination
) -> None:
    destination.answer = lambda hit: 422 if hit.seq == 0 else 200
    await enqueue(store, "p", 0)
    await enqueue(store, "p", 1)
    running = await start_loop(store, destination.url)
    await wait_until(lambda: any(h.seq == 1 for h in destination.hits))
    await running.stop()
    assert await statuses(store) == {"ev-p-0": "dead", "ev-p-1": "delivered"}
    assert [h.seq for h in destination.hits] == [0, 1]  # a 4xx is not retried
    async with store.engine.connect() as conn:
        reason = (await conn.execute(sa.select(deliveries.c.last_error).where(
            deliveries.c.event_id == "ev-p-0"))).scalar_one()  # fmt: skip
    assert reason == "refused by the destination: HTTP 422: answer"


async def test_dead_letter_with_hold_keeps_later_events_back(
    store: Store, destination: Destination
) -> None:
    destination.answer = lambda hit: 422 if hit.seq == 0 else 200
    await enqueue(store, "p", 0)
    await enqueue(store, "p", 1)
    running = await start_loop(store, destination.url, hold=True)
    await wait_until(lambda: len(destination.hits) == 1)
    await asyncio.sleep(0.3)  # several poll intervals: nothing else may go
    await running.stop()
    assert await statuses(store) == {"ev-p-0": "dead", "ev-p-1": "pending"}


async def test_max_attempts_then_dead_letter(store: Store, destination: Destination) -> None:
    destination.answer = lambda _hit: 500
    await enqueue(store, "p", 0)
    policy = FAST.model_copy(update={"max_attempts": 4, "max_age": None})
    running = await start_loop(store, destination.url, policy=policy)
    await wait_until(lambda: len(destination.hits) == 4)
    await asyncio.sleep(0.5)
    await running.stop()
    assert len(destination.hits) == 4
    assert await statuses(store) == {"ev-p-0": "dead"}


async def test_timeout_is_transient(store: Store, destination: Destination) -> None:
    destination.delay = 1.0
    await enqueue(store, "p", 0)
    running = await start_loop(store, destination.url, answer_within=0.2)
    await wait_until(lambda: len(destination.hits) >= 2)
    destination.delay = 0
    await wait_until(lambda: len(destination.hits) >= 3)
    await running.stop()
    async with store.engine.connect() as conn:
        details = [r.detail for r in await conn.execute(
            sa.select(attempts.c.detail).order_by(attempts.c.id))]  # fmt: skip
    assert details[0] == "no answer within the timeout"


async def test_signature_verifies_with_the_shared_secret(
    store: Store, destination: Destination
) -> None:
    await enqueue(store, "p", 0)
    running = await start_loop(store, destination.url, secret=SECRET)
    await wait_until(lambda: len(destination.hits) == 1)
    await running.stop()
    [hit] = destination.hits
    assert hit.signature is not None
    timestamp, mac = (part.split("=", 1)[1] for part in hit.signature.split(","))
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + hit.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(mac, expected)


async def test_backoff_survives_a_restart(tmp_path: Path, destination: Destination) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"
    store = await Store.open(StoreConfig(url=url))
    destination.answer = lambda _hit: 503
    await enqueue(store, "p", 0)
    slow = FAST.model_copy(update={"initial_backoff": timedelta(seconds=1)})
    running = await start_loop(store, destination.url, policy=slow)
    await wait_until(lambda: len(destination.hits) == 2)
    await running.stop()
    await store.close()

    destination.answer = lambda _hit: 200
    reopened = await Store.open(StoreConfig(url=url))
    running = await start_loop(reopened, destination.url, policy=slow)
    await wait_until(lambda: len(destination.hits) == 3, deadline=30)
    await running.stop()
    async with reopened.engine.connect() as conn:
        row = (await conn.execute(sa.select(deliveries.c.status, deliveries.c.attempts))).one()
    await reopened.close()
    assert tuple(row) == ("delivered", 3)


async def test_a_slow_destination_cannot_take_every_slot(tmp_path: Path) -> None:
    """With a per-destination cap, a destination that hangs holds only its own slots."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    slow, fast = Destination(delay=3.0), Destination()
    apps = []
    for dest in (slow, fast):
        app = web.Application()
        app.router.add_post("/", dest.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        dest.url = f"http://127.0.0.1:{port}/"
        apps.append(runner)
    for patient in range(12):
        body = json.dumps({"patient": f"p{patient}", "seq": 0})
        await store.record_intake([IntakeRecord(
            source="s", payload=body.encode(), received_at=datetime.now(UTC), format="hl7v2",
            message_key=f"m{patient}",
            accepted=AcceptedEvent(event_id=f"ev-{patient}", kind="discharge",
                                   care_setting="mental_health", patient_key=f"p{patient}",
                                   occurred_at=None, body=body,
                                   destinations=(("slow", False), ("fast", False))),
        )])  # fmt: skip
    client = await WebhookClient().__aenter__()
    senders = {
        name: WebhookSender(WebhookDestination(type="webhook", name=name, url=d.url,
                                               timeout=timedelta(seconds=10),
                                               allow_plain_http=True), client.post)
        for name, d in (("slow", slow), ("fast", fast))
    }  # fmt: skip
    loop = DeliveryLoop(store, senders, {"slow": FAST, "fast": FAST},
                        {"slow": False, "fast": False},
                        DeliveryConfig(concurrency=8, poll_interval=timedelta(milliseconds=50)),
                        caps={"slow": 2, "fast": 8})  # fmt: skip
    task = asyncio.create_task(loop.run())
    try:
        await wait_until(lambda: len(fast.hits) == 12, deadline=10, what="fast deliveries")
        assert len(slow.hits) <= 2, "the slow destination holds only its own two slots"
    finally:
        loop.stop()
        await task
        await loop.drain(0)
        await client.close()
        for runner in apps:
            await runner.cleanup()
        await store.close()


async def test_claims_are_batched_per_destination(tmp_path: Path, destination: Destination) -> None:
    """Each claim is a write transaction: with deliveries finishing one by one, the loop claims
    again once a quarter of the destination's slots are free, not once per finished delivery
    (claiming one row per slot that freed made a transaction per delivery: issue 16)."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    total = 240
    # Answers that take 2 to 30 ms, so deliveries finish one by one, not in waves.
    destination.delay_for = lambda hit: 0.002 + (int(hit.patient[1:]) * 7919 % 29) / 1000
    for patient in range(total):
        await enqueue(store, f"p{patient}", 0)
    claims: list[int] = []
    real_claim = store.claim_due

    async def counting_claim(*args: object, **kwargs: object) -> list[ClaimedDelivery]:
        claimed = await real_claim(*args, **kwargs)  # type: ignore[arg-type]
        if claimed:
            claims.append(len(claimed))
        return claimed

    store.claim_due = counting_claim  # type: ignore[method-assign]
    running = await start_loop(store, destination.url, concurrency=32, cap=16)
    try:
        await wait_until(lambda: len({h.key for h in destination.hits}) == total, deadline=60,
                         what="every delivery")  # fmt: skip
        assert sum(claims) == total
        assert len(claims) <= total // 6, f"{len(claims)} claims for {total} deliveries"
        assert max(loop_busy for loop_busy in claims) <= 16, "never more than the cap claimed"
    finally:
        await running.stop(drain=0)
        await store.close()


@dataclass(frozen=True)
class _Operator:
    name: str = "operator"
    role: str = "operator"


async def test_a_delivery_waiting_for_a_slot_sees_a_hold_and_a_new_body(
    tmp_path: Path, destination: Destination
) -> None:
    """A delivery is claimed only when it can be sent at once: one still waiting for its
    destination's slot is not leased, so an operator can hold it, and a re-map of its event
    (the corrected body) is what is sent, never the body it had when the destination was
    busy (a claim-ahead that leased waiting deliveries sent stale bodies: review of issue 16)."""
    from engine.store.operator import hold_delivery
    from engine.store.schema import events

    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    destination.delay = 0.5
    for patient in ("p0", "p1", "p2"):
        await enqueue(store, patient, 0)
    running = await start_loop(store, destination.url, cap=1)
    try:
        await wait_until(lambda: len(destination.hits) == 1, deadline=30, what="the first send")
        first = destination.hits[0].patient
        held, remapped = [p for p in ("p0", "p1", "p2") if p != first]
        async with store.engine.connect() as conn:
            held_id = (await conn.execute(sa.select(deliveries.c.id).where(
                deliveries.c.event_id == f"ev-{held}-0"))).scalar_one()  # fmt: skip
        assert (await hold_delivery(store, _Operator(), held_id, "wrong patient?")).count == 1
        async with store.writing() as conn:  # what apply_remap writes for a pending delivery
            await conn.execute(
                sa.update(events)
                .where(events.c.event_id == f"ev-{remapped}-0")
                .values(body=json.dumps({"patient": remapped, "seq": 99}))
            )
            await conn.commit()  # fmt: skip
        await wait_until(lambda: len(destination.hits) == 2, deadline=30, what="the second send")
        await asyncio.sleep(0)
        sent = {(h.patient, h.seq) for h in destination.hits}
        assert sent == {(first, 0), (remapped, 99)}, "the held one waits; the new body went"
    finally:
        await running.stop(drain=0)
        await store.close()


async def test_a_send_that_does_not_end_holds_back_only_its_own_slot(
    tmp_path: Path, destination: Destination
) -> None:
    """A send that does not end holds only its own slot: the destination's other deliveries
    are claimed and sent past it at once, not at the next poll (here far longer than the
    test), nor after the silent send's timeout."""
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    destination.delay_for = lambda hit: 4.0 if hit.patient == "p0" else 0.0
    for patient in range(20):
        await enqueue(store, f"p{patient}", 0)
    running = await start_loop(store, destination.url, poll_interval=timedelta(seconds=30), cap=4)
    try:
        await wait_until(lambda: len({h.patient for h in destination.hits} - {"p0"}) == 19,
                         deadline=2.5, what="every other patient's delivery")  # fmt: skip
        await wait_until(lambda: running.loop.in_flight == 1, deadline=2, what="only p0's send out")
    finally:
        await running.stop(drain=0)
        await store.close()
