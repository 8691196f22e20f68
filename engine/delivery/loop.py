"""The delivery loop: drain the outbox to the destinations in per-patient order, surviving faults.

    store.claim_due()      the oldest pending delivery per (destination, patient), leased
      ─► sender.send()     a few quick tries, each recorded as an attempt
      ─► classify          delivered │ permanent → dead letter │ transient → backoff or dead letter
      ─► store.finish_delivery()  recorded only while the claim's guard holds (outcomes.py)

While a delivery is in flight its lease is renewed every quarter of `delivery.lease`, so a slow
but healthy send is never taken by another worker, and a dead engine's deliveries are free again
within one lease of its last renewal.

Retry state lives in the store (`next_attempt_at`, `attempts`), so backoff survives restarts and
outages of hours. A patient whose head delivery is waiting holds only that patient's later events
for that destination; every other patient's deliveries go past it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import structlog
from prometheus_client import Gauge

from engine import logs, metrics
from engine.config import DeliveryConfig, RetryPolicy
from engine.delivery.outcomes import OutcomeWriter
from engine.delivery.policy import decide
from engine.delivery.sending import Sender, SendResult
from engine.store import (
    AttemptRecord,
    ClaimedDelivery,
    DeadLettered,
    Delivered,
    DeliveryOutcome,
    OutcomeRefused,
    Rescheduled,
    Store,
)

log = structlog.get_logger("carebridge.delivery")


class DeliveryLoop:
    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        policies: Mapping[str, RetryPolicy],
        holds: Mapping[str, bool],
        config: DeliveryConfig,
        *,
        caps: Mapping[str, int] | None = None,
        notifications: frozenset[str] = frozenset(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._notifications = notifications
        self._senders = senders
        self._policies = policies
        self._holds = holds
        self._config = config
        self._sleep = sleep
        self._owner = f"engine-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._held: set[int] = set()
        """The ids of the deliveries in flight, whose leases are renewed while they run."""
        self._sending: set[int] = set()
        """The ids of the deliveries holding a slot: claimed, and their outcome not yet decided.
        A delivery whose outcome is being recorded holds no slot (`_free`)."""
        self._renewer: asyncio.Task[None] | None = None
        self._caps: Mapping[str, int] = caps or {}
        """Most deliveries in flight per destination (an MLLP link takes one at a time)."""
        self._busy: collections.Counter[str] = collections.Counter()
        self._free_when_decided = store.engine.dialect.name == "postgresql"
        """PostgreSQL: a slot is freed when the outcome is decided (`_free`); SQLite keeps it
        until the outcome is recorded: freed sooner there, the claims it let in were more
        write transactions queued on the one writer, and end to end fell (pairs 0.56-0.97)."""
        self._outcomes = OutcomeWriter(store, sleep)
        self._gauges: dict[str, Gauge] = {}
        """Each destination's in-flight gauge (`labels()` is a lookup under a lock)."""

    def wake(self) -> None:
        """Intake committed new deliveries: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def owner(self) -> str:
        """The name this engine's leases carry (new at every start)."""
        return self._owner

    async def run(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_leases(), name="delivery-leases")
        log.info("delivery.started", owner=self._owner, lease_s=self._lease_s)
        while not self._stopping.is_set():
            self._wake.clear()
            free = min(
                self._config.concurrency - len(self._sending),
                # Deliveries recording their outcomes hold no slot; at most as many again.
                2 * self._config.concurrency - len(self._in_flight),
            )
            more_due = False
            # Each claim is a write transaction (a commit, an fsync), so a destination is claimed
            # for only when half of its own slots are free (or it has none in flight), not
            # for every slot that frees: claiming one row per finished delivery made a claim per
            # delivery and cut throughput threefold. Each destination is claimed for within its
            # own cap, so a slow or silent one holds only its own slots.
            for destination in self._senders:
                room = self._room(destination, free)
                if room <= 0:
                    continue
                claimed = await self._claim(destination, room)
                for item in claimed:
                    if item.id in self._held:
                        # Still ours and in flight: its lease ran out while the store could not
                        # renew it, and this claim renewed it. Sent again, it would reach the
                        # destination twice and count a slot twice.
                        log.info("delivery.reclaimed_own", delivery_id=item.id)
                        continue
                    self._launch(item)
                free -= len(claimed)
                more_due = more_due or (len(claimed) == room and free > 0)
            if more_due:
                continue  # more may be due right now
            await self._idle()

    @property
    def _lease_s(self) -> float:
        return self._config.lease.total_seconds()

    async def _renew_leases(self) -> None:
        """Every quarter lease, extend the leases of the deliveries in flight (one statement
        for all): a send that outlasts the lease keeps it; a dead engine renews nothing."""
        while True:
            await asyncio.sleep(self._lease_s / 4)
            held = sorted(self._held)
            if not held:
                continue
            try:
                kept = await self._store.renew_leases(
                    held, lease=self._config.lease, owner=self._owner
                )
            except Exception as exc:  # noqa: BLE001 - retried at the next quarter lease
                log.warning("delivery.lease_renewal_failed", error=type(exc).__name__)
                continue
            if kept < len(held):  # finished meanwhile, or (store stalled) taken by another
                log.debug("delivery.leases_not_renewed", deliveries=len(held) - kept)

    def _room(self, destination: str, free: int) -> int:
        """How many deliveries to claim for `destination` now: 0 until half of its slots
        (within its cap and the engine's free slots) are free, unless it has none in flight."""
        cap = min(self._caps.get(destination, self._config.concurrency), self._config.concurrency)
        busy = self._busy[destination]
        room = min(free, self._config.batch_size, cap - busy)
        if busy and room < max(1, cap // 2):
            return 0
        return max(0, room)

    async def _claim(self, destination: str, limit: int) -> list[ClaimedDelivery]:
        try:
            return await self._store.claim_due(
                [destination], limit=limit, lease=self._config.lease, owner=self._owner
            )
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any store fault
            log.error("delivery.claim_failed", error=type(exc).__name__)
            return []

    def _launch(self, item: ClaimedDelivery) -> None:
        task = asyncio.create_task(self._deliver(item))
        self._in_flight.add(task)
        self._held.add(item.id)
        self._sending.add(item.id)
        self._busy[item.destination] += 1
        task.add_done_callback(functools.partial(self._done_for, item))

    def _free(self, item: ClaimedDelivery) -> None:
        """Give back `item`'s slot (once): its outcome is decided, and what is left is to record
        it. The next delivery of the same patient cannot be claimed meanwhile: this one stays
        pending, and leased (`_held` renews it), until its outcome is committed."""
        if item.id in self._sending:
            self._sending.discard(item.id)
            self._busy[item.destination] -= 1
            self._wake.set()

    def _done_for(self, item: ClaimedDelivery, task: asyncio.Task[None]) -> None:
        self._free(item)
        self._held.discard(item.id)
        self._done(task)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("delivery.crashed", error=type(exc).__name__)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._config.poll_interval.total_seconds())

    async def drain(self, deadline: float) -> None:
        """On shutdown: let in-flight deliveries finish until `deadline` (seconds), then cancel;
        a cancelled delivery's lease is released so any replica can send it at once."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=deadline)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=5)
        if self._renewer is not None:
            self._renewer.cancel()
        await self._outcomes.close()

    async def _deliver(self, claimed: ClaimedDelivery) -> None:
        sender = self._senders[claimed.destination]
        policy = self._policies[claimed.destination]
        tries: list[AttemptRecord] = []
        in_flight = self._in_flight_gauge(claimed.destination)
        in_flight.inc()
        with logs.delivery_context(
            event_id=claimed.event_id,
            delivery_id=claimed.id,
            destination=claimed.destination,
            event_kind=claimed.kind,
        ):
            try:
                last = await self._try(sender, claimed, policy, tries)
            except asyncio.CancelledError:
                await asyncio.shield(self._record_cancelled(claimed, tries))
                raise
            finally:
                in_flight.dec()
            outcome = decide(
                policy,
                claimed,
                tries,
                last,
                hold=self._holds.get(claimed.destination, False),
                now=datetime.now(UTC),
            )
            if self._free_when_decided:
                self._free(claimed)
            refused = await self._outcomes.record(claimed, tries, outcome)
            if refused is not None:  # a stale claim's, or one overtaken: nothing was written
                self._refused(claimed, outcome, refused)
                metrics.count_attempts(claimed.destination, (t.outcome for t in tries))
                return
            self._log(claimed, tries, outcome)
            self._measure(claimed, tries, outcome)

    def _in_flight_gauge(self, destination: str) -> Gauge:
        gauge = self._gauges.get(destination)
        if gauge is None:
            gauge = self._gauges[destination] = metrics.IN_FLIGHT.labels(destination)
        return gauge

    async def _try(
        self,
        sender: Sender,
        claimed: ClaimedDelivery,
        policy: RetryPolicy,
        tries: list[AttemptRecord],
    ) -> SendResult:
        """Up to `quick_attempts` tries, `quick_wait` apart, while the answer is transient
        (and asks for no wait); each is recorded; the last answer is returned."""
        result = await self._attempt(sender, claimed, tries)
        for _ in range(policy.quick_attempts - 1):
            if not self._retry_quickly(result):
                break
            await self._sleep(policy.quick_wait.total_seconds())
            result = await self._attempt(sender, claimed, tries)
        return result

    def _retry_quickly(self, result: SendResult) -> bool:
        return (
            result.outcome == "transient"
            and result.retry_after is None  # asked to wait: no quick retries
            and not self._stopping.is_set()
        )

    @staticmethod
    async def _attempt(
        sender: Sender, claimed: ClaimedDelivery, tries: list[AttemptRecord]
    ) -> SendResult:
        started = datetime.now(UTC)
        clock = time.perf_counter()
        try:
            result = await sender.send(claimed)
        except Exception as exc:  # noqa: BLE001 - a sender bug must not lose the delivery
            result = SendResult("transient", detail=f"sender failed: {type(exc).__name__}")
        tries.append(
            AttemptRecord(
                started_at=started,
                duration_ms=int((time.perf_counter() - clock) * 1000),
                outcome=result.outcome,
                status_code=result.status_code,
                detail=result.detail,
            )
        )
        return result

    async def _record_cancelled(self, claimed: ClaimedDelivery, tries: list[AttemptRecord]) -> None:
        try:
            if tries:
                retry_now = Rescheduled(datetime.now(UTC), "interrupted by shutdown")
                if why := await self._store.finish_delivery(claimed, tries, retry_now):
                    self._refused(claimed, retry_now, why)
            else:
                await self._store.release([claimed.id], owner=self._owner)
        except Exception as exc:  # noqa: BLE001 - shutting down; the lease will expire anyway
            log.warning("delivery.release_failed", error=type(exc).__name__)

    def _measure(
        self, claimed: ClaimedDelivery, tries: list[AttemptRecord], outcome: DeliveryOutcome
    ) -> None:
        metrics.count_attempts(claimed.destination, (t.outcome for t in tries))
        if isinstance(outcome, Delivered):
            seconds = max((outcome.at - claimed.created_at).total_seconds(), 0.0)
            notification = claimed.destination in self._notifications
            metrics.observe_delivered(
                claimed.destination, claimed.kind, seconds, notification=notification
            )

    @staticmethod
    def _refused(claimed: ClaimedDelivery, outcome: DeliveryOutcome, why: OutcomeRefused) -> None:
        """An outcome the store did not record (`OutcomeRefused`): delivered (the row had moved
        on), or rescheduled or dead-lettered under a claim that no longer held. The line names
        the delivery, its destination and the guard; nothing of the patient's."""
        kind = type(outcome).__name__.lower()
        log.warning("delivery.outcome_refused", delivery_id=claimed.id,
                    destination=claimed.destination, outcome=kind, refused_by=why,
                    claimed_attempts=claimed.attempts)  # fmt: skip

    @staticmethod
    def _log(
        claimed: ClaimedDelivery, tries: list[AttemptRecord], outcome: DeliveryOutcome
    ) -> None:
        fields = {
            "attempts": claimed.attempts + len(tries),
            "status_code": tries[-1].status_code if tries else None,
        }
        match outcome:
            case Delivered():
                log.info("delivery.delivered", **fields)
            case Rescheduled(next_attempt_at=at):
                log.warning("delivery.rescheduled", next_attempt_at=at.isoformat(), **fields)
            case DeadLettered(reason=reason):
                # The reason may quote the destination's answer: keep it in the store only.
                log.error("delivery.dead_lettered", **fields)
                del reason
