"""RabbitMQ: a small awaitable facade over pika's AsyncioConnection.

`Broker` owns one AMQP connection, one publisher channel in confirm mode and one channel per
registered consumer. A supervisor task converges the actual state (connection, topology,
publisher channel, consumers) towards the wanted state whenever something is lost, retrying with
exponential backoff and jitter; pika never reconnects by itself.

Rules this module keeps:
- every callback handed to pika is guarded: an exception escaping into pika aborts the connection;
- pika errors become `adapters.errors` at this boundary;
- logs carry names, tags and ids, never message bodies (patient data).

Use one `Broker` for publishing and another for consuming: RabbitMQ blocks a publishing
connection during a resource alarm, and acks sent on a blocked connection stall too.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec
from urllib.parse import urlsplit

import pika
import pika.exceptions
import structlog
from pika.adapters.asyncio_connection import AsyncioConnection

from adapters.errors import (
    BrokerUnavailable,
    ConfirmTimeout,
    PublishFailed,
    PublishNacked,
    PublishReturned,
)
from adapters.rabbitmq_topology import (
    INBOUND_DLX,
    INBOUND_EXCHANGE,
    BindingSpec,
    ExchangeSpec,
    QueueSpec,
    Topology,
    inbound_topology,
)

__all__ = [
    "INBOUND_DLX",
    "INBOUND_EXCHANGE",
    "AmqpSettings",
    "BindingSpec",
    "Broker",
    "ExchangeSpec",
    "Handler",
    "InboundDelivery",
    "QueueSpec",
    "Topology",
    "inbound_topology",
]

log = structlog.get_logger(__name__)

HeaderValue = str | int | float | bool | bytes | None
Handler = Callable[["InboundDelivery"], Awaitable[None]]
P = ParamSpec("P")

# Every published message carries its confirm tag so a basic.return (which RabbitMQ sends just
# before the basic.ack of the same message) can be matched to the publish exactly. Consumers of
# this module never see it: it is dropped from InboundDelivery.headers.
TAG_HEADER = "x-carebridge-confirm-tag"


def _guarded(fn: Callable[P, None]) -> Callable[P, None]:
    """Wrap a pika callback so that no exception can escape into pika."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("amqp.callback_failed", callback=getattr(fn, "__qualname__", "?"))

    return wrapper


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


@dataclass(frozen=True)
class AmqpSettings:
    url: str = "amqp://guest:guest@localhost:5672/"
    prefetch: int = 100
    heartbeat: int = 30  # seconds; 0 disables (don't)
    connection_name: str = "carebridge"
    confirm_timeout: float = 30.0  # default deadline for one publish confirm
    connect_timeout: float = 10.0  # one connection attempt, and each channel operation
    reconnect_initial_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    # TLS: used when the URL scheme is amqps or any file below is set.
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True  # verify the server certificate and host name
    server_hostname: str | None = None  # SNI / host name check; defaults to the URL host

    def __post_init__(self) -> None:
        if self.prefetch < 1:
            raise ValueError("prefetch must be >= 1")
        if not 0 < self.reconnect_initial_delay <= self.reconnect_max_delay:
            raise ValueError("need 0 < reconnect_initial_delay <= reconnect_max_delay")

    @property
    def tls(self) -> bool:
        scheme = urlsplit(self.url).scheme.lower()
        return scheme == "amqps" or self.ca_file is not None or self.cert_file is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connection_parameters(self) -> Any:
        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat
        params.stack_timeout = self.connect_timeout
        params.client_properties = {"connection_name": self.connection_name}
        context = self.ssl_context()
        if context is not None:
            params.ssl_options = pika.SSLOptions(context, self.server_hostname or params.host)
        return params


class _Settlement:
    """The mutable part of a delivery: which channel it came on, and whether it is settled."""

    __slots__ = ("channel", "settled", "tag")

    def __init__(self, channel: Any, tag: int) -> None:
        self.channel = channel
        self.tag = tag
        self.settled = False

    def settle(self, ack: bool, requeue: bool) -> None:
        if self.settled:
            return  # a second ack/nack of one tag would make RabbitMQ close the channel
        self.settled = True
        if not self.channel.is_open:
            log.debug("amqp.settle_dropped", delivery_tag=self.tag, reason="channel closed")
            return  # the broker requeues it; the engine deduplicates the redelivery
        try:
            if ack:
                self.channel.basic_ack(self.tag)
            else:
                self.channel.basic_nack(self.tag, requeue=requeue)
        except pika.exceptions.AMQPError as exc:
            log.debug("amqp.settle_dropped", delivery_tag=self.tag, reason=_describe(exc))


@dataclass(frozen=True, eq=False)
class InboundDelivery:
    """One message from a queue. `ack()` and `nack()` are synchronous and must be called on the
    event loop's thread; the first call wins, later ones are ignored. Settling a delivery whose
    channel has since closed is silently dropped (the broker redelivers it)."""

    body: bytes = field(repr=False)  # never in a repr: patient data
    headers: Mapping[str, Any]
    message_id: str | None
    content_type: str | None
    redelivered: bool
    routing_key: str
    exchange: str
    queue: str
    delivery_tag: int
    _settlement: _Settlement = field(repr=False, compare=False)

    def ack(self) -> None:
        self._settlement.settle(ack=True, requeue=False)

    def nack(self, requeue: bool) -> None:
        self._settlement.settle(ack=False, requeue=requeue)

    @property
    def settled(self) -> bool:
        return self._settlement.settled

    @property
    def stale(self) -> bool:
        """True once the channel it came on has closed: settling it is pointless."""
        return not self._settlement.channel.is_open


class _ChannelLost(Exception):
    def __init__(self, reason: BaseException) -> None:
        super().__init__(_describe(reason))
        self.reason = reason


class _Chan:
    """A pika channel plus a future that completes (with the reason) when it closes."""

    def __init__(self, channel: Any, closed: asyncio.Future[BaseException]) -> None:
        self.channel = channel
        self.closed = closed
        self.published = 0  # publisher channels: the last delivery tag used
        self.pending: dict[int, _Pending] = {}

    @property
    def is_open(self) -> bool:
        return not self.closed.done() and bool(self.channel.is_open)

    async def wait(self, fut: asyncio.Future[Any], deadline: float) -> Any:
        """The result of `fut`, unless the channel closes or `deadline` seconds pass first."""
        async with asyncio.timeout(deadline):
            await asyncio.wait([fut, self.closed], return_when=asyncio.FIRST_COMPLETED)
        if fut.done():
            return fut.result()
        raise _ChannelLost(self.closed.result())

    async def call(self, method: str, deadline: float, **kwargs: Any) -> Any:
        """Run a pika channel RPC (e.g. "queue_declare") and return its OK frame."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        getattr(self.channel, method)(
            callback=_guarded(functools.partial(_set_result, done)), **kwargs
        )
        return await self.wait(done, deadline)


@dataclass(eq=False)
class _Pending:
    future: asyncio.Future[None]
    returned: str | None = None


@dataclass(eq=False)
class _Consumer:
    queue: str
    handler: Handler
    inbox: asyncio.Queue[InboundDelivery] = field(default_factory=asyncio.Queue)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    busy: set[asyncio.Task[Any]] = field(default_factory=set)
    chan: _Chan | None = None
    first_attempt: asyncio.Future[BaseException | None] | None = None
    cancelled: bool = False

    @property
    def attached(self) -> bool:
        return self.chan is not None and self.chan.is_open


def _is_permanent(exc: BaseException) -> bool:
    """Errors that retrying will not fix without an operator (only used to fail start() fast)."""
    reason = exc.reason if isinstance(exc, _ChannelLost) else exc
    return isinstance(
        reason,
        pika.exceptions.ChannelClosedByBroker
        | pika.exceptions.ProbableAuthenticationError
        | pika.exceptions.ProbableAccessDeniedError,
    )


class Broker:
    """One supervised AMQP connection: publish with confirms, consume with manual acks.

    `start()` returns once connected with the topology declared. From then on a supervisor task
    rebuilds whatever is lost (connection, topology, QoS, publisher confirms, every registered
    consumer), with exponential backoff and jitter, until `close()`.
    """

    def __init__(self, settings: AmqpSettings | None = None, topology: Topology | None = None):
        self._settings = settings or AmqpSettings()
        self._params = self._settings.connection_parameters()  # bad URLs fail here, not later
        self._topology = topology or Topology()
        self._conn: Any = None
        self._conn_closed: asyncio.Future[BaseException] | None = None
        self._topology_declared = False
        self._pub: _Chan | None = None
        self._consumers: dict[str, _Consumer] = {}
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
        await self._stop_workers(list(self._consumers.values()), grace)
        conn, closed = self._conn, self._conn_closed
        if conn is not None and closed is not None and not closed.done():
            self._close_connection(conn)
            try:
                async with asyncio.timeout(self._settings.connect_timeout):
                    await asyncio.shield(closed)
            except TimeoutError:
                log.warning("amqp.close_timeout")
        if self._pub is not None:
            self._fail_pending(self._pub, lambda: BrokerUnavailable("broker closed"))
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
        chan = self._pub
        if chan is None or not self.connected:
            raise BrokerUnavailable("not connected to RabbitMQ")
        if self._blocked:
            raise BrokerUnavailable("RabbitMQ is blocking publishers (resource alarm)")
        tag = chan.published + 1
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={**(headers or {}), TAG_HEADER: tag},
            message_id=message_id,
            content_type=content_type,
        )
        try:
            chan.channel.basic_publish(exchange, routing_key, body, properties, mandatory=mandatory)
        except (pika.exceptions.ProtocolSyntaxError, pika.exceptions.ShortStringTooLong) as exc:
            raise ValueError(f"message cannot be encoded: {_describe(exc)}") from exc
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(f"publish failed: {_describe(exc)}") from exc
        chan.published = tag
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chan.pending[tag] = _Pending(confirmed)
        deadline = self._settings.confirm_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(deadline):
                await confirmed
        except TimeoutError:
            raise ConfirmTimeout(
                f"no confirm within {deadline}s (exchange={exchange!r}, "
                f"routing_key={routing_key!r}, message_id={message_id!r})"
            ) from None
        finally:
            chan.pending.pop(tag, None)

    async def consume(self, queue: str, handler: Handler, *, concurrency: int = 1) -> None:
        """Register a consumer; it is (re)attached by the supervisor after every reconnect.

        `handler` runs in `concurrency` worker tasks (1 keeps the queue's order) and must call
        `delivery.ack()` or `delivery.nack(requeue=...)`; if it raises, the error type is logged
        and the delivery is nacked with requeue (the queue's delivery limit dead-letters poison).
        If connected, waits for the first attach and raises BrokerUnavailable if the broker
        refuses it (e.g. no such queue); otherwise it returns at once.
        """
        if self._closing:
            raise BrokerUnavailable("broker is closed")
        if queue in self._consumers:
            raise ValueError(f"already consuming from {queue!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        reg = _Consumer(queue, handler, first_attempt=asyncio.get_running_loop().create_future())
        reg.workers = [
            asyncio.create_task(self._work(reg), name=f"amqp-consumer:{queue}:{i}")
            for i in range(concurrency)
        ]
        self._consumers[queue] = reg
        if self._supervisor is None or not self.connected:
            self._wake.set()
            return
        self._wake.set()
        assert reg.first_attempt is not None
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                error = await asyncio.shield(reg.first_attempt)
        except TimeoutError:
            return  # e.g. the connection dropped meanwhile: the supervisor keeps trying
        if error is not None and _is_permanent(error):
            del self._consumers[queue]
            await self._stop_workers([reg], grace=0)
            raise BrokerUnavailable(f"cannot consume from {queue!r}: {error}") from error

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
                    log.warning("amqp.cancel_failed", queue=reg.queue, error=_describe(exc))

    # ---- supervisor ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._reconcile()
            except Exception as exc:  # noqa: BLE001 - anything failing here is retried
                failures += 1
                self._last_error = _describe(exc)
                started = self._started
                if started is not None and not started.done() and _is_permanent(exc):
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
                _set_result(self._started, None)
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
        if not self._topology_declared:
            await self._declare(self._topology)
            self._topology_declared = True
        if self._pub is None or not self._pub.is_open:
            self._pub = await self._open_publisher()
        first_error: Exception | None = None
        for reg in list(self._consumers.values()):
            if reg.attached or reg.cancelled or self._consumers.get(reg.queue) is not reg:
                continue
            try:
                await self._attach(reg)
                error: Exception | None = None
            except Exception as exc:  # noqa: BLE001 - reported to consume() and retried
                error = exc
                first_error = first_error or exc
            if reg.first_attempt is not None:
                _set_result(reg.first_attempt, error)
        if first_error is not None:
            raise first_error

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[Any] = loop.create_future()
        closed: asyncio.Future[BaseException] = loop.create_future()

        def on_open_error(_conn: Any, exc: BaseException) -> None:
            if not opened.done():
                opened.set_exception(exc)

        def on_close(conn: Any, reason: BaseException) -> None:
            _set_result(closed, reason)
            self._on_connection_closed(conn, reason)

        conn = AsyncioConnection(
            self._params,
            on_open_callback=_guarded(functools.partial(_set_result, opened)),
            on_open_error_callback=_guarded(on_open_error),
            on_close_callback=_guarded(on_close),
            custom_ioloop=loop,
        )
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                await opened
        except BaseException:
            self._close_connection(conn)
            raise
        conn.add_on_connection_blocked_callback(_guarded(self._on_blocked))
        conn.add_on_connection_unblocked_callback(_guarded(self._on_unblocked))
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

    async def _open_channel(self, on_closed: Callable[[_Chan, BaseException], None]) -> _Chan:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[Any] = loop.create_future()
        closed: asyncio.Future[BaseException] = loop.create_future()
        channel = self._conn.channel(
            on_open_callback=_guarded(functools.partial(_set_result, opened))
        )
        chan = _Chan(channel, closed)

        def on_close(_channel: Any, reason: BaseException) -> None:
            _set_result(closed, reason)
            on_closed(chan, reason)

        channel.add_on_close_callback(_guarded(on_close))
        try:
            await chan.wait(opened, self._settings.connect_timeout)
        except BaseException:
            _close_channel(chan)
            raise
        return chan

    async def _declare(self, topology: Topology) -> None:
        chan = await self._open_channel(lambda _chan, _reason: None)
        t = self._settings.connect_timeout
        try:
            for ex in topology.exchanges:
                await chan.call(
                    "exchange_declare",
                    t,
                    exchange=ex.name,
                    exchange_type=ex.type,
                    durable=ex.durable,
                    auto_delete=ex.auto_delete,
                    arguments=dict(ex.arguments),
                )
            for q in topology.queues:
                await chan.call(
                    "queue_declare", t, queue=q.name, durable=q.durable, arguments=dict(q.arguments)
                )
            for b in topology.bindings:
                await chan.call(
                    "queue_bind", t, queue=b.queue, exchange=b.exchange, routing_key=b.routing_key
                )
        finally:
            _close_channel(chan)
        log.info(
            "amqp.topology_declared",
            exchanges=len(topology.exchanges),
            queues=len(topology.queues),
            bindings=len(topology.bindings),
        )

    async def _open_publisher(self) -> _Chan:
        chan = await self._open_channel(self._on_publisher_closed)
        chan.channel.add_on_return_callback(_guarded(functools.partial(self._on_return, chan)))
        await chan.call(
            "confirm_delivery",
            self._settings.connect_timeout,
            ack_nack_callback=_guarded(functools.partial(self._on_confirm, chan)),
        )
        return chan

    async def _attach(self, reg: _Consumer) -> None:
        chan = await self._open_channel(functools.partial(self._on_consumer_closed, reg))
        t = self._settings.connect_timeout
        try:
            await chan.call("basic_qos", t, prefetch_count=self._settings.prefetch)
            on_cancel = functools.partial(self._on_cancel, reg, chan)
            chan.channel.add_on_cancel_callback(_guarded(on_cancel))
            await chan.call(
                "basic_consume",
                t,
                queue=reg.queue,
                on_message_callback=_guarded(functools.partial(self._on_message, reg)),
                auto_ack=False,
            )
        except BaseException:
            _close_channel(chan)
            raise
        reg.chan = chan
        log.info("amqp.consumer_attached", queue=reg.queue, prefetch=self._settings.prefetch)

    # ---- pika callbacks (always wrapped in _guarded) -------------------------------------

    def _on_connection_closed(self, conn: Any, reason: BaseException) -> None:
        if conn is not self._conn:
            return
        self._topology_declared = self._blocked = False
        if self._pub is not None:  # normally already done by the channel's own callback
            self._fail_pending(self._pub, lambda: BrokerUnavailable(_describe(reason)))
        if not self._closing:
            log.warning("amqp.connection_lost", reason=_describe(reason))
            self._wake.set()

    def _on_publisher_closed(self, chan: _Chan, reason: BaseException) -> None:
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            # The broker refused something on this channel (e.g. 404 no such exchange).
            log.warning("amqp.channel_closed", channel="publish", reason=_describe(reason))
            self._fail_pending(chan, lambda: PublishFailed(f"channel closed: {reason}"))
        else:
            self._fail_pending(chan, lambda: BrokerUnavailable(f"lost: {_describe(reason)}"))
        if not self._closing:
            self._wake.set()

    def _fail_pending(self, chan: _Chan, error: Callable[[], Exception]) -> None:
        pending, chan.pending = chan.pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(error())

    def _on_confirm(self, chan: _Chan, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        last = int(method.delivery_tag)
        if method.multiple:
            tags = list(itertools.takewhile(lambda t: t <= last, chan.pending))
        else:
            tags = [last] if last in chan.pending else []
        for tag in tags:
            p = chan.pending.pop(tag)
            if p.future.done():
                continue
            if not acked:
                p.future.set_exception(PublishNacked(f"broker nacked delivery tag {tag}"))
            elif p.returned is not None:
                p.future.set_exception(PublishReturned(p.returned))
            else:
                p.future.set_result(None)

    def _on_return(self, chan: _Chan, _channel: Any, method: Any, props: Any, _body: bytes) -> None:
        tag = (props.headers or {}).get(TAG_HEADER)
        reply = (
            f"unroutable: {method.reply_code} {method.reply_text} "
            f"(exchange={method.exchange!r}, routing_key={method.routing_key!r})"
        )
        log.warning(
            "amqp.publish_returned",
            exchange=method.exchange,
            routing_key=method.routing_key,
            reply_code=method.reply_code,
            message_id=props.message_id,
        )
        pending = chan.pending.get(tag) if isinstance(tag, int) else None
        if pending is not None:
            pending.returned = reply

    def _on_blocked(self, conn: Any, frame: Any) -> None:
        if conn is self._conn:
            self._blocked = True
            log.warning("amqp.blocked", reason=str(getattr(frame.method, "reason", "")))

    def _on_unblocked(self, conn: Any, _frame: Any) -> None:
        if conn is self._conn:
            self._blocked = False
            log.info("amqp.unblocked")

    def _on_consumer_closed(self, reg: _Consumer, _chan: _Chan, reason: BaseException) -> None:
        if self._closing:
            return
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            log.warning(
                "amqp.channel_closed", channel="consume", queue=reg.queue, reason=str(reason)
            )
        self._wake.set()

    def _on_cancel(self, reg: _Consumer, chan: _Chan, _frame: Any) -> None:
        # basic.cancel from the broker (e.g. the queue was deleted): close the channel so its
        # unacked deliveries are requeued; the supervisor re-attaches with backoff.
        log.warning("amqp.consumer_cancelled", queue=reg.queue)
        self._topology_declared = False  # re-declare it: the topology is the wanted state
        _close_channel(chan)

    def _on_message(
        self, reg: _Consumer, channel: Any, method: Any, props: Any, body: bytes
    ) -> None:
        headers = dict(props.headers or {})
        headers.pop(TAG_HEADER, None)
        tag = int(method.delivery_tag)
        reg.inbox.put_nowait(
            InboundDelivery(
                body=body,
                headers=headers,
                message_id=props.message_id,
                content_type=props.content_type,
                redelivered=bool(method.redelivered),
                routing_key=method.routing_key,
                exchange=method.exchange,
                queue=reg.queue,
                delivery_tag=tag,
                _settlement=_Settlement(channel, tag),
            )
        )

    # ---- consumer workers ------------------------------------------------------------------

    async def _work(self, reg: _Consumer) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._closing:
            delivery = await reg.inbox.get()
            if self._closing:
                return
            if delivery.stale:  # its channel is gone: the broker has requeued it already
                log.debug(
                    "amqp.delivery_dropped", queue=reg.queue, delivery_tag=delivery.delivery_tag
                )
                continue
            reg.busy.add(me)
            try:
                await reg.handler(delivery)
            except asyncio.CancelledError as exc:
                if me.cancelling():  # we are being stopped
                    raise
                self._handler_failed(reg, delivery, exc)  # the handler cancelled itself
            except Exception as exc:  # noqa: BLE001 - a handler bug must not stop consumption
                self._handler_failed(reg, delivery, exc)
            finally:
                reg.busy.discard(me)

    @staticmethod
    def _handler_failed(reg: _Consumer, delivery: InboundDelivery, exc: BaseException) -> None:
        # Only the type: an exception's text may quote the message (patient data).
        log.error(
            "amqp.handler_failed",
            queue=reg.queue,
            message_id=delivery.message_id,
            delivery_tag=delivery.delivery_tag,
            redelivered=delivery.redelivered,
            error_type=type(exc).__name__,
        )
        delivery.nack(requeue=True)

    async def _stop_workers(self, regs: list[_Consumer], grace: float) -> None:
        workers = [(reg, w) for reg in regs for w in reg.workers]
        busy = [w for reg, w in workers if w in reg.busy]
        for reg, w in workers:
            if w not in reg.busy:
                w.cancel()
        if busy and grace > 0:
            await asyncio.wait(busy, timeout=grace)
        for _, w in workers:
            w.cancel()
        await asyncio.gather(*(w for _, w in workers), return_exceptions=True)
        for reg in regs:
            if reg.chan is not None:
                _close_channel(reg.chan)

    # ---- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _close_connection(conn: Any) -> None:
        try:
            if not (conn.is_closing or conn.is_closed):
                conn.close()
        except pika.exceptions.AMQPError as exc:
            log.debug("amqp.close_ignored", error=_describe(exc))


def _close_channel(chan: _Chan) -> None:
    try:
        if chan.channel.is_open or chan.channel.is_opening:
            chan.channel.close()
    except pika.exceptions.AMQPError as exc:
        log.debug("amqp.close_ignored", error=_describe(exc))
