"""The supervised connection: `Broker`, the facade the engine holds.

`Broker` owns one AMQP connection, one publisher channel in confirm mode and one channel per
registered consumer. A supervisor task converges the actual state (connection, topology,
publisher channel, consumers) towards the wanted state whenever something is lost, retrying with
exponential backoff and jitter; pika never reconnects by itself.

Rules this package keeps:
- every callback handed to pika is guarded: an exception escaping into pika aborts the connection;
- pika errors become `adapters.errors` at this boundary;
- logs carry names, tags and ids, never message bodies (patient data).

Use one `Broker` for publishing and another for consuming: RabbitMQ blocks a publishing
connection during a resource alarm, and acks sent on a blocked connection stall too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pika.exceptions

from adapters.errors import BrokerUnavailable
from adapters.rabbitmq.channel import (
    Chan,
    close_channel,
    close_connection,
    describe,
    guarded,
    is_permanent,
    log,
    open_any_connection,
    open_channel,
    set_result,
)
from adapters.rabbitmq.consumer import Consumer, Deliveries, Handler, stop_workers
from adapters.rabbitmq.publisher import ConfirmChannel, HeaderValue, open_publisher
from adapters.rabbitmq.settings import AmqpSettings
from adapters.rabbitmq.topology import Topology, declare


class Broker:
    """One supervised AMQP connection: publish with confirms, consume with manual acks.

    `start()` returns once connected with the topology declared. From then on a supervisor task
    rebuilds whatever is lost (connection, topology, QoS, publisher confirms, every registered
    consumer), with exponential backoff and jitter, until `close()`.
    """

    def __init__(self, settings: AmqpSettings | None = None, topology: Topology | None = None):
        self._settings = settings or AmqpSettings()
        self._nodes = self._settings.node_parameters()  # bad URLs fail here, not later
        self._node = 0
        self._params = self._nodes[0]
        self._topology = topology or Topology()
        self._conn: Any = None
        self._conn_closed: asyncio.Future[BaseException] | None = None
        self._topology_declared = False
        self._pub: ConfirmChannel | None = None
        self._consumers: dict[str, Consumer] = {}
        self._blocked = False
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._last_error = "no attempt yet"
        self._connection_count = 0

    # ---- public API ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Connected, topology declared and the publisher channel open."""
        return (
            not self._closing
            and self._conn is not None
            and bool(self._conn.is_open)
            and self._topology_declared
            and self._pub is not None
            and self._pub.is_open
        )

    @property
    def consumers_attached(self) -> bool:
        """Connected and every registered consumer is consuming right now."""
        return self.connected and all(
            c.attached for c in self._consumers.values() if not c.cancelled
        )

    @property
    def connection_count(self) -> int:
        """How many connections have been opened so far (1 + reconnects)."""
        return self._connection_count

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - part of the API
        if self._supervisor is not None or self._closing:
            raise RuntimeError("Broker.start() may be called once")
        self._started = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name="amqp-supervisor")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._started)
        except TimeoutError:
            await self.close()
            raise BrokerUnavailable(
                f"RabbitMQ not ready within {timeout}s: {self._last_error}"
            ) from None
        except BrokerUnavailable:
            await self.close()
            raise

    async def close(self, grace: float = 5.0) -> None:
        """Stop the supervisor, let running handlers finish (up to `grace` seconds) so their
        acks go out, then close the connection. Unsettled deliveries go back to the queue."""
        if self._closing:
            return
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        for reg in self._consumers.values():
            reg.deliveries.stop()
        await stop_workers(list(self._consumers.values()), grace)
        conn, closed = self._conn, self._conn_closed
        if conn is not None and closed is not None and not closed.done():
            close_connection(conn)
            try:
                async with asyncio.timeout(self._settings.connect_timeout):
                    await asyncio.shield(closed)
            except TimeoutError:
                log.warning("amqp.close_timeout")
        if self._pub is not None:
            self._pub.fail_pending(lambda: BrokerUnavailable("broker closed"))
        log.info("amqp.closed", connection_name=self._settings.connection_name)

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, HeaderValue] | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a confirm deadline, not a cancel
        mandatory: bool = True,
    ) -> None:
        """Publish persistently and wait for the broker's confirm.

        With `mandatory` (the default) a message no queue is bound for is a failure
        (PublishReturned); without it, the broker confirms it and drops it.

        Raises BrokerUnavailable (not connected, blocked by an alarm, or the connection was lost
        before the confirm: republish), PublishReturned (no queue bound), PublishNacked,
        ConfirmTimeout (outcome unknown: republish), PublishFailed (the broker closed the
        publisher channel, e.g. the exchange does not exist).
        """
        pub = self._pub
        if pub is None or not self.connected:
            raise BrokerUnavailable("not connected to RabbitMQ")
        if self._blocked:
            raise BrokerUnavailable("RabbitMQ is blocking publishers (resource alarm)")
        await pub.publish(
            exchange,
            routing_key,
            body,
            headers=headers,
            message_id=message_id,
            content_type=content_type,
            deadline=self._settings.confirm_timeout if timeout is None else timeout,
            mandatory=mandatory,
        )

    async def subscribe(self, queues: Sequence[str]) -> Deliveries:
        """Consume `queues` into one buffer and return it; take batches with `take(limit)`.

        Each queue is (re)attached by the supervisor after every reconnect, with QoS `prefetch`.
        Whoever takes a delivery must `ack()` or `nack(requeue=...)` it. If connected, waits for
        the first attach and raises BrokerUnavailable if the broker refuses it (e.g. no such
        queue); otherwise it returns at once.
        """
        deliveries = Deliveries()
        await self._register(queues, deliveries, lambda _reg: None)
        return deliveries

    async def consume(self, queue: str, handler: Handler, *, concurrency: int = 1) -> None:
        """Register a consumer that hands each delivery to `handler` (see `subscribe`).

        `handler` runs in `concurrency` worker tasks (1 keeps the queue's order) and must call
        `delivery.ack()` or `delivery.nack(requeue=...)`; if it raises, the error type is logged
        and the delivery is nacked with requeue (the queue's delivery limit dead-letters poison).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")

        def start_workers(reg: Consumer) -> None:
            reg.workers = [
                asyncio.create_task(reg.work(handler), name=f"amqp-consumer:{queue}:{i}")
                for i in range(concurrency)
            ]

        await self._register([queue], Deliveries(), start_workers)

    async def _register(
        self, queues: Sequence[str], deliveries: Deliveries, start: Callable[[Consumer], None]
    ) -> None:
        if self._closing:
            raise BrokerUnavailable("broker is closed")
        for queue in queues:
            if queue in self._consumers or list(queues).count(queue) > 1:
                raise ValueError(f"already consuming from {queue!r}")
        loop = asyncio.get_running_loop()
        regs = [Consumer(q, deliveries, loop.create_future()) for q in queues]
        for reg in regs:
            start(reg)
            self._consumers[reg.queue] = reg
        self._wake.set()
        if self._supervisor is None or not self.connected:
            return
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                errors = await asyncio.gather(*(asyncio.shield(r.first_attempt) for r in regs))
        except TimeoutError:
            return  # e.g. the connection dropped meanwhile: the supervisor keeps trying
        refused = [(r, e) for r, e in zip(regs, errors, strict=True) if e and is_permanent(e)]
        if refused:
            for reg in regs:
                del self._consumers[reg.queue]
            await stop_workers(regs, grace=0)
            reg, error = refused[0]
            raise BrokerUnavailable(f"cannot consume from {reg.queue!r}: {error}") from error

    async def cancel_consumers(self) -> None:
        """Stop taking new deliveries (shutdown). Channels stay open, so deliveries already
        taken can still be acked; unacked ones return to their queues when the broker closes."""
        for reg in self._consumers.values():
            reg.cancelled = True
            chan = reg.chan
            if chan is None or not chan.is_open:
                continue
            for consumer_tag in list(chan.channel.consumer_tags):
                try:
                    await chan.call(
                        "basic_cancel", self._settings.connect_timeout, consumer_tag=consumer_tag
                    )
                except Exception as exc:  # noqa: BLE001 - closing anyway; requeued on close
                    log.warning("amqp.cancel_failed", queue=reg.queue, error=describe(exc))

    # ---- supervisor ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._reconcile()
            except Exception as exc:  # noqa: BLE001 - anything failing here is retried
                failures += 1
                self._last_error = describe(exc)
                started = self._started
                if started is not None and not started.done() and is_permanent(exc):
                    started.set_exception(
                        BrokerUnavailable(f"RabbitMQ refused: {self._last_error}")
                    )
                    return
                delay = self._backoff(failures)
                up = self._conn is not None and self._conn.is_open
                log.warning(
                    "amqp.recovery_retry" if up else "amqp.reconnecting",
                    attempt=failures,
                    delay_s=round(delay, 2),
                    error=self._last_error,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            if self._started is not None:
                set_result(self._started, None)
            await self._wake.wait()

    def _backoff(self, failures: int) -> float:
        s = self._settings
        ceiling = s.reconnect_initial_delay * 2 ** min(failures - 1, 30)
        ceiling = min(s.reconnect_max_delay, ceiling)
        return random.uniform(ceiling / 2, ceiling)

    async def _reconcile(self) -> None:
        """Bring the actual state up to the wanted state, step by step."""
        if self._conn is None or not self._conn.is_open:
            if self._connection_count:  # a reconnect: spread replicas out a little
                await asyncio.sleep(random.uniform(0, self._settings.reconnect_initial_delay))
            await self._connect()
        t = self._settings.connect_timeout
        if not self._topology_declared:
            chan = await open_channel(self._conn, lambda _chan, _reason: None, t)
            try:
                await declare(chan, self._topology, t)
            finally:
                close_channel(chan)
            self._topology_declared = True
        if self._pub is None or not self._pub.is_open:
            self._pub = await open_publisher(self._conn, t, self._on_publisher_lost)
        await self._attach_consumers()

    async def _attach_consumers(self) -> None:
        first_error: Exception | None = None
        for reg in list(self._consumers.values()):
            if reg.attached or reg.cancelled or self._consumers.get(reg.queue) is not reg:
                continue
            try:
                await reg.attach(
                    self._conn,
                    self._settings.prefetch,
                    self._settings.connect_timeout,
                    self._on_consumer_closed,
                    self._on_cancel,
                )
                error: Exception | None = None
            except Exception as exc:  # noqa: BLE001 - reported to consume() and retried
                error = exc
                first_error = first_error or exc
            set_result(reg.first_attempt, error)
        if first_error is not None:
            raise first_error

    async def _connect(self) -> None:
        first = (self._node + 1) % len(self._nodes) if self._connection_count else 0
        self._node, conn, closed = await open_any_connection(
            self._nodes, first, self._settings.connect_timeout, self._on_connection_closed
        )
        self._params = self._nodes[self._node]
        conn.add_on_connection_blocked_callback(guarded(self._on_blocked))
        conn.add_on_connection_unblocked_callback(guarded(self._on_unblocked))
        self._conn, self._conn_closed = conn, closed
        self._topology_declared = self._blocked = False
        self._connection_count += 1
        log.info(
            "amqp.connected",
            host=self._params.host,
            port=self._params.port,
            vhost=self._params.virtual_host,
            connection_name=self._settings.connection_name,
            connection_count=self._connection_count,
        )

    # ---- pika callbacks (always wrapped in guarded) --------------------------------------

    def _on_connection_closed(self, conn: Any, reason: BaseException) -> None:
        if conn is not self._conn:
            return
        self._topology_declared = self._blocked = False
        if self._pub is not None:  # normally already done by the channel's own callback
            self._pub.fail_pending(lambda: BrokerUnavailable(describe(reason)))
        if not self._closing:
            log.warning("amqp.connection_lost", reason=describe(reason))
            self._wake.set()

    def _on_publisher_lost(self) -> None:
        if not self._closing:
            self._wake.set()

    def _on_blocked(self, conn: Any, frame: Any) -> None:
        if conn is self._conn:
            self._blocked = True
            log.warning("amqp.blocked", reason=str(frame.method.reason))

    def _on_unblocked(self, conn: Any, _frame: Any) -> None:
        if conn is self._conn:
            self._blocked = False
            log.info("amqp.unblocked")

    def _on_consumer_closed(self, reg: Consumer, _chan: Chan, reason: BaseException) -> None:
        reg.deliveries.discard_stale()
        if self._closing:
            return
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            log.warning(
                "amqp.channel_closed", channel="consume", queue=reg.queue, reason=str(reason)
            )
        self._wake.set()

    def _on_cancel(self, reg: Consumer, chan: Chan, _frame: Any) -> None:
        # basic.cancel from the broker (e.g. the queue was deleted): close the channel so its
        # unacked deliveries are requeued; the supervisor re-attaches with backoff.
        log.warning("amqp.consumer_cancelled", queue=reg.queue)
        self._topology_declared = False  # re-declare it: the topology is the wanted state
        close_channel(chan)
