"""Intake: from a RabbitMQ delivery to a committed message-log row, event and outbox rows.

    deliveries.take() ─► prepare(): parse → map → route      (pure; a failure is a rejection)
                   ─► store.link_and_record(batch), one transaction (the next batch
                      is parsed meanwhile): in it, Corrections.linked_in(): cancels find
                      their originals, merges re-key; then the batch's rows
                   ─► ack each delivery                        (only after the commit)
                   ─► wake the delivery loop

Messages are taken in small batches straight from the broker adapter's buffer (whatever has
arrived on any source queue, up to `intake.batch_size`) so that one commit, one fsync, covers
many messages; each message is still written whole or not at all.
A store that is down stalls intake (messages stay unacked at the broker, bounded by prefetch)
rather than nacking them: a nack would count towards the queue's delivery limit and park
healthy messages as poison.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import structlog

from engine import logs, metrics
from engine.config import Config
from engine.corrections import Corrections
from engine.corrections.lookup import Linked, log_decisions
from engine.preparation import Prepared, prepare
from engine.store import (
    History,
    IntakeRecord,
    IntakeResult,
    MessageStatus,
    Store,
    StoreRefused,
    until_the_store_answers,
)

log = structlog.get_logger("carebridge.intake")
T = TypeVar("T")


class BrokerDelivery(Protocol):
    """What intake needs of a message the broker handed it."""

    @property
    def body(self) -> bytes: ...

    @property
    def message_id(self) -> str | None: ...

    @property
    def redelivered(self) -> bool: ...

    @property
    def queue(self) -> str: ...

    def ack(self) -> None: ...

    def nack(self, requeue: bool) -> None: ...


class DeliverySource(Protocol):
    """Where intake takes its deliveries from (`adapters.rabbitmq.Deliveries`)."""

    @property
    def backlog(self) -> int: ...

    async def take(self, limit: int) -> Sequence[BrokerDelivery]:
        """Wait for one delivery, then take what is there, up to `limit`; [] once stopped."""
        ...

    def ack_all(self, deliveries: Sequence[BrokerDelivery]) -> None:
        """Ack these deliveries (taken from here), as `ack()` each would, in fewer frames."""
        ...

    def stop(self) -> None: ...


def _transport_id(delivery: BrokerDelivery) -> str | None:
    """The sender's AMQP message id, bounded and without NUL (PostgreSQL refuses it)."""
    return (delivery.message_id or "").replace("\x00", "")[:200] or None


class Intake:
    """Takes what arrives on every source queue and commits it; see the module docstring.

    `sources` names the source of each queue: the queue, not a header, names the source, since
    anything inside a message is the sender's word.
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        deliveries: DeliverySource,
        sources: Mapping[str, str],
        *,
        on_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._config = config
        self._profiles = config.feed_profiles
        self._follow_up_rules = config.follow_up_rules
        self._corrections = Corrections(
            {d.name: d.hold_on_dead_letter for d in config.destinations}
        )
        self._on_committed = on_committed
        self._deliveries = deliveries
        self._sources = dict(sources)

    def stop(self) -> None:
        """Finish the batches in hand (the one being written, the next already parsed), then
        stop; unread deliveries stay unacked at the broker."""
        self._deliveries.stop()

    @property
    def backlog(self) -> int:
        """Deliveries received from the broker and not taken yet."""
        return self._deliveries.backlog

    async def run(self) -> None:
        limit = self._config.intake.batch_size
        writing: asyncio.Task[None] | None = None
        try:
            while taken := await self._deliveries.take(limit):
                metrics.INTAKE_WAITING.set(self._deliveries.backlog)
                batch = [(self._sources[d.queue], d) for d in taken]
                if not any(d.redelivered for d in taken):
                    # Parse and map this batch while the one before is written; the writes
                    # (and acks) stay one batch at a time, in the order taken.
                    prepared = self._prepare(batch)
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._store_batch(batch, prepared))
                    writing.add_done_callback(self._stop_if_failed)
                    continue
                if writing is not None:
                    await writing
                    writing = None
                await self._redelivered(batch)
        finally:
            if writing is not None:
                await writing

    def _stop_if_failed(self, task: asyncio.Task[None]) -> None:
        """A write that failed ends `run` now (its `finally` raises the failure), not when the
        next batch arrives: in a quiet hour the batch would wait unacked, the engine ready."""
        if not task.cancelled() and task.exception() is not None:
            self._deliveries.stop()

    async def _redelivered(self, batch: list[tuple[str, BrokerDelivery]]) -> None:
        """Redelivered: the engine may have died holding these. One at a time, each marked as
        suspect before it is processed: a message that kills the engine again while it is the
        only one in hand is set aside (kept, rejected) on the next redelivery, long before the
        queue's delivery limit could take healthy messages with it."""
        for item in batch:
            if item[1].redelivered:
                await self._commit_suspect(*item)
            else:
                await self._commit([item])

    async def _commit_suspect(self, source: str, delivery: BrokerDelivery) -> None:
        digest = hashlib.sha256(delivery.body).hexdigest()
        if await self._retrying(self._store.is_suspect, source, digest):
            reason = ("this message stopped the engine while it was being processed; "
                      "set aside for an operator, not processed")  # fmt: skip
            stub = IntakeRecord(
                source=source,
                payload=delivery.body,
                received_at=datetime.now(UTC),
                reason=reason,
                error_code="207",
                transport_id=_transport_id(delivery),
            )
            _linked, [result] = await self._write([Prepared(stub, None)], [(source, digest)])
            delivery.ack()
            log.error("intake.poison_set_aside", source=source, message_row=result.message_id,
                      transport_id=stub.transport_id)  # fmt: skip
            return
        await self._retrying(self._store.mark_suspect, source, digest)
        await self._commit([(source, delivery)], clear=[(source, digest)])

    async def _retrying(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """The store call, retried until the store answers (the message waits at the broker)."""
        result: T = await until_the_store_answers()(call, *args)
        return result

    async def _commit(
        self, batch: list[tuple[str, BrokerDelivery]], clear: Sequence[tuple[str, str]] = ()
    ) -> None:
        await self._store_batch(batch, self._prepare(batch), clear)

    def _prepare(self, batch: list[tuple[str, BrokerDelivery]]) -> list[Prepared]:
        now = datetime.now(UTC)
        return [
            prepare(
                source,
                d.body,
                config=self._config,
                profiles=self._profiles,
                received_at=now,
                transport_id=_transport_id(d),
                follow_up_rules=self._follow_up_rules,
            )
            for source, d in batch
        ]

    async def _store_batch(
        self,
        batch: list[tuple[str, BrokerDelivery]],
        prepared: list[Prepared],
        clear: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Write the batch (retrying until the store answers), then ack what was stored."""
        try:
            linked, written = await self._write(prepared, clear)
            results: list[IntakeResult | None] = list(written)
        except StoreRefused:
            # Content the store refuses (a constraint, a value it cannot hold) must not stall
            # every message behind it: write one at a time so only the culprit is set aside.
            linked, results = prepared, [await self._write_alone(p, clear) for p in prepared]
        stored: list[tuple[Prepared, IntakeResult]] = []
        acked: list[BrokerDelivery] = []
        for (_source, delivery), item, result in zip(batch, linked, results, strict=True):
            if result is None:
                # Not even a rejection could be stored: park it in the broker's dead-letter
                # queue rather than lose it or loop on it.
                delivery.nack(requeue=False)
                log.error(
                    "intake.unstorable",
                    source=item.record.source,
                    transport_id=item.record.transport_id,
                )
                continue
            acked.append(delivery)
            stored.append((item, result))
        self._deliveries.ack_all(acked)  # a run of them as one frame
        with logs.one_write():  # the batch's lines, each whole, in one write
            for item, result in stored:
                self._log(item, result)
        metrics.count_intake(Counter((i.record.source, r.status) for i, r in stored))
        self._on_committed()

    async def _write_alone(
        self, item: Prepared, clear: Sequence[tuple[str, str]] = ()
    ) -> IntakeResult | None:
        try:
            return (await self._write([item], clear))[1][0]
        except StoreRefused as exc:
            reason = f"the store refused this message ({exc.cause_name}); kept for an operator"
            record = item.record
            stub = IntakeRecord(
                source=record.source,
                payload=record.payload,
                received_at=record.received_at,
                reason=reason,
                error_code="207",
                format=record.format,
            )
            try:
                return (await self._write([Prepared(stub, None)], clear))[1][0]
            except StoreRefused:
                return None

    async def _write(
        self, prepared: list[Prepared], clear: Sequence[tuple[str, str]] = ()
    ) -> tuple[list[Prepared], list[IntakeResult]]:
        """Link corrections and write, until the store is reachable: the messages are safe at
        the broker meanwhile.

        Everything but content the store refuses is retried here (connection refused or dropped,
        a server starting up, a locked database); refused content is raised for the caller to
        isolate the message that caused it.
        """
        linked: list[Linked] = []

        def link(history: History) -> list[IntakeRecord]:
            # In the write transaction (on the store's writer thread on SQLite): corrections
            # ask the history on the write's own connection.
            linked[:] = [self._corrections.linked_in(prepared, history)]
            return [p.record for p in linked[0][0]]

        async for attempt in until_the_store_answers(log=log, event="intake.store_unavailable"):
            with attempt:
                self._store.check_room()  # a (nearly) full disk: the messages wait, unacked
                results = await self._store.link_and_record(link, clear_suspects=clear)
                [(items, decided)] = linked
                log_decisions(decided)
                return items, results
        raise AssertionError("unreachable: tenacity retries until success")

    @staticmethod
    def _log(item: Prepared, result: IntakeResult) -> None:
        # Identifiers of the message only: never names, NHS numbers or payload text.
        record = item.record
        fields: dict[str, Any] = {
            "source": record.source,
            "message_row": result.message_id,
            "message_key": record.message_key,
            "status": result.status,
        }
        if item.event is not None:
            fields.update(
                event_id=item.event.event_id,
                event_kind=item.event.kind.value,
                deliveries=result.deliveries,
            )
        if result.status == MessageStatus.REJECTED:
            log.warning(
                "intake.rejected", reason=result.reason, location=record.error_location, **fields
            )
        else:
            log.info(f"intake.{result.status}", **fields)
