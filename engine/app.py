"""The composition root: the one place that builds the adapters and wires them to the engine.

    config ─► Store.open (migrations) ─► Broker.start (topology) ─► DeliveryLoop, Intake
           ─► every source queue into one buffer that Intake takes batches from
           ─► /healthz, /readyz ─► wait for SIGTERM/SIGINT

Shutdown (SIGTERM): stop consuming, finish the intake batches in hand, let in-flight deliveries
finish until the deadline (then release their leases), close the broker and the store. Anything
not acknowledged to the broker is redelivered to the next engine; nothing is lost.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import structlog

from adapters.fhir_http import FhirListener
from adapters.mllp import MllpListener, server_ssl_context
from adapters.rabbitmq import AmqpSettings, Broker, ExchangeSpec, Topology, inbound_topology
from adapters.webhook import WebhookClient
from engine import alerts, health, mesh_inbox, retention
from engine.config import (
    AmqpConfig,
    AmqpDestination,
    Config,
    MllpDestination,
)
from engine.console.app import start_console
from engine.delivery.loop import DeliveryLoop
from engine.delivery.sending import Sender
from engine.fhir_gateway import FhirGateway, FhirSource
from engine.intake import Intake
from engine.mllp_gateway import MllpGateway
from engine.openapi import document_route, fhir_document
from engine.senders import Built, build_senders
from engine.store import SoleEngine, Store
from mappings import native

log = structlog.get_logger("carebridge.app")

INBOUND_EXCHANGE = "carebridge.inbound"


def queue_for(source: str) -> str:
    return f"{INBOUND_EXCHANGE}.{source}"


def amqp_settings(config: AmqpConfig, name: str = "carebridge-engine") -> AmqpSettings:
    tls = config.tls
    return AmqpSettings(
        url=config.urls[0],
        alternates=tuple(config.urls[1:]),
        prefetch=config.prefetch,
        heartbeat=int(config.heartbeat.total_seconds()),
        connection_name=name,
        confirm_timeout=config.confirm_timeout.total_seconds(),
        ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
        key_file=str(tls.key_file) if tls and tls.key_file else None,
        verify=tls.verify if tls else True,
        server_hostname=tls.server_hostname if tls else None,
    )


def topology(config: Config) -> Topology:
    """The inbound queues of every source, and the topic exchange of every AMQP destination."""
    inbound = inbound_topology(
        [s.name for s in config.sources],
        exchange=INBOUND_EXCHANGE,
        delivery_limit=config.amqp.delivery_limit,
    )
    event_exchanges = sorted(
        {d.exchange for d in config.destinations if isinstance(d, AmqpDestination)}
    )
    return inbound + Topology(exchanges=[ExchangeSpec(name, "topic") for name in event_exchanges])


@dataclass
class Engine:
    """A running engine: what tests and the CLI hold on to."""

    config: Config
    store: Store
    broker: Broker
    """Consumes the inbound queues (and acks)."""
    publisher: Broker
    """Publishes to AMQP destinations: a connection of its own, since RabbitMQ blocks a
    publishing connection during a resource alarm, and the intake acks must still go out."""
    intake: Intake
    delivery: DeliveryLoop
    http_port: int
    _stack: AsyncExitStack
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    listeners: list[MllpListener] = field(default_factory=list)
    """The MLLP listeners, in the order of the sources that have one."""
    fhir_listener: FhirListener | None = None
    console_port: int | None = None
    failed: set[str] = field(default_factory=set)
    """Core tasks that ended on their own: the engine is then not ready (and says why)."""

    def watch_tasks(self) -> None:
        def ended(task: asyncio.Task[None]) -> None:
            if self._stopping.is_set():
                return
            self.failed.add(task.get_name())
            error = None if task.cancelled() else task.exception()
            log.error("engine.task_ended", task=task.get_name(),
                      error=type(error).__name__ if error else None)  # fmt: skip

        for task in self._tasks:
            task.add_done_callback(ended)

    async def readiness(self) -> dict[str, bool]:
        return {
            "broker_connected": self.broker.connected and self.publisher.connected,
            "consumers_attached": self.broker.consumers_attached,
            "store_reachable": await self.store.ping(),
            "store_has_room": self.store.has_room(),
            "tasks_running": not self.failed,
        }

    async def stop(self, deadline: float | None = None) -> None:
        """Stop intake, let deliveries in flight finish until the deadline, close everything."""
        if deadline is None:
            deadline = self.config.shutdown.deadline.total_seconds()
        log.info("engine.stopping", deadline_s=deadline)
        clock = asyncio.get_running_loop().time
        end = clock() + deadline
        self._stopping.set()
        for listener in self.listeners:  # no new messages; answers in progress still go out
            await listener.close(grace=min(5.0, deadline))
        if self.fhir_listener is not None:
            await self.fhir_listener.close()
        self.intake.stop()
        await self.broker.cancel_consumers()
        self.delivery.stop()
        await asyncio.wait(self._tasks, timeout=deadline)
        await self.delivery.drain(max(0.0, end - clock()))
        for task in self._tasks:
            task.cancel()
        await self._stack.aclose()
        log.info("engine.stopped")


async def _start_fhir_listener(
    config: Config, publisher: Broker, store: Store, stack: AsyncExitStack
) -> FhirListener | None:
    """`POST /fhir/{source}` for every source with `fhir` set; answers after the confirm."""
    settings = config.fhir_http
    if settings is None:
        return None

    async def publish(source: str, payload: bytes, headers: Mapping[str, str]) -> None:
        store.check_room()  # StoreFull: the sender hears 503, as during a broker alarm
        await publisher.publish(INBOUND_EXCHANGE, source, payload, headers=dict(headers),
                                content_type="application/fhir+json")  # fmt: skip

    profiles = config.feed_profiles
    sources = {
        s.name: FhirSource(profiles[s.name], tuple(s.fhir.tokens), frozenset(s.fhir.client_names))
        for s in config.sources
        if s.fhir is not None
    }
    tls = settings.tls
    gateway = FhirGateway(sources, publish, max_message_bytes=config.intake.max_message_bytes)
    listener = FhirListener(
        settings.host, settings.port, admit=gateway.refusal, handle=gateway.handle,
        max_body_bytes=settings.max_body_bytes, limits=health.http_limits(settings.limits),
        ssl_context=server_ssl_context(tls.cert_file, tls.key_file, tls.ca_file,
                                       tls.require_client_cert) if tls else None,
        behind_tls_proxy=settings.behind_tls_proxy, extra=[document_route(fhir_document())],
    )  # fmt: skip
    await listener.start()
    stack.push_async_callback(listener.close)
    return listener


async def _start_listeners(config: Config, publisher: Broker, store: Store,
                           stack: AsyncExitStack) -> list[MllpListener]:  # fmt: skip
    """One MLLP listener per source that has one; each answers only after the broker confirm."""

    async def publish(source: str, payload: bytes, headers: Mapping[str, str]) -> None:
        store.check_room()  # StoreFull: the sender hears AR, as during a broker alarm
        await publisher.publish(INBOUND_EXCHANGE, source, payload, headers=dict(headers))

    listeners: list[MllpListener] = []
    profiles = config.feed_profiles
    for source in config.sources:
        if source.mllp is None:
            continue
        settings = source.mllp
        allowed = settings.allowed_client_names
        gateway = MllpGateway(source.name, profiles[source.name], publish,
                              frozenset(allowed) if allowed is not None else None)  # fmt: skip
        tls = settings.tls
        listener = MllpListener(
            settings.host, settings.port, handle=gateway.handle,
            max_message_bytes=settings.max_message_bytes,
            frame_timeout=settings.frame_timeout.total_seconds(),
            idle_timeout=settings.idle_timeout.total_seconds(),
            max_connections=settings.max_connections,
            ssl_context=server_ssl_context(tls.cert_file, tls.key_file, tls.ca_file,
                                           tls.require_client_cert) if tls else None,
            reject_oversized=gateway.reject_oversized,
        )  # fmt: skip
        await listener.start()
        stack.push_async_callback(listener.close)
        listeners.append(listener)
    return listeners


async def _open_brokers(config: Config, stack: AsyncExitStack) -> tuple[Broker, Broker]:
    """The publishing broker and the consuming one: connections of their own (see Engine)."""
    wanted = topology(config)
    publisher = Broker(amqp_settings(config.amqp, "carebridge-publish"), wanted)
    await publisher.start()
    stack.push_async_callback(publisher.close)
    broker = Broker(amqp_settings(config.amqp, "carebridge-intake"), wanted)
    await broker.start()
    stack.push_async_callback(broker.close)
    return publisher, broker


async def _start_intake(
    config: Config, store: Store, broker: Broker, on_committed: Callable[[], None]
) -> Intake:
    """Every source queue consumed into one buffer, which intake takes its batches from."""
    queues = {queue_for(source.name): source.name for source in config.sources}
    deliveries = await broker.subscribe(list(queues))
    return Intake(store, config, deliveries, queues, on_committed=on_committed)


def _delivery_loop(config: Config, store: Store, senders: Mapping[str, Sender]) -> DeliveryLoop:
    """The outbox's drain: each destination with its retry policy, hold rule and cap on
    deliveries in flight (an MLLP link takes one at a time)."""
    return DeliveryLoop(
        store,
        senders,
        {d.name: config.retry_policies[d.retry] for d in config.destinations},
        {d.name: d.hold_on_dead_letter for d in config.destinations},
        config.delivery,
        notifications=frozenset(
            d.name for d in config.destinations if d.type in ("notification", "mesh")
        ),
        caps={
            d.name: 1 if isinstance(d, MllpDestination) else config.delivery.per_destination
            for d in config.destinations
        },
    )


def _start_tasks(config: Config, store: Store, webhook: WebhookClient, delivery: DeliveryLoop,
                 intake: Intake, stopping: asyncio.Event,
                 built: Built) -> list[asyncio.Task[None]]:  # fmt: skip
    """The engine's long-running tasks: delivery, intake, retention, the alert watches and each
    MESH destination's inbox watch."""
    tasks = [
        asyncio.create_task(delivery.run(), name="delivery"),
        asyncio.create_task(intake.run(), name="intake"),
        asyncio.create_task(retention.run(store, config.retention, stopping), name="retention"),
        asyncio.create_task(
            alerts.watch_follow_ups(store, config.follow_up, webhook.post, stopping),
            name="follow-up-watch",
        ),
    ]
    if config.alerts is not None:
        watching = alerts.run(store, config.alerts, webhook.post, stopping)
        tasks.append(asyncio.create_task(watching, name="alerts"))
    for name, (dest, mailbox) in built.mailboxes.items():
        inbox = mesh_inbox.watch(dest, mailbox, store, config.alerts, webhook.post, stopping)
        tasks.append(asyncio.create_task(inbox, name=f"mesh-inbox-{name}"))
    return tasks


async def _serve_http(engine: Engine, stack: AsyncExitStack) -> None:
    """/healthz, /readyz, the notification pages, the follow-up list and /openapi.json, on
    `http`."""
    config = engine.config
    extra = health.http_routes(engine.store, config)
    runner, engine.http_port = await health.serve(
        health.health_app(engine.readiness, extra), config.http
    )
    stack.push_async_callback(runner.cleanup)


async def start_engine(config: Config, *, settle: bool = False) -> Engine:
    """Start every part of the engine; the caller owns the returned Engine and must stop it.

    `settle`: `settle_heap` once the store, the brokers and the senders are up and before intake
    starts, so that its one full collection stalls no message in flight (`carebridge run`)."""
    stack = AsyncExitStack()
    try:
        if sole := SoleEngine.take(config.store.url):  # SQLite: one engine per file
            stack.callback(sole.release)
        store = await Store.open(config.store)
        stack.push_async_callback(store.close)
        if freed := await store.release_leases_at_start():  # SQLite: a dead predecessor's
            log.info("delivery.leases_freed_at_start", deliveries=freed)
        publisher, broker = await _open_brokers(config, stack)
        webhook = await stack.enter_async_context(WebhookClient())
        built = build_senders(config, webhook, publisher, stack, store)
        delivery = _delivery_loop(config, store, built.senders)
        if settle:
            settle_heap()
        intake = await _start_intake(config, store, broker, delivery.wake)
        stopping = asyncio.Event()
        tasks = _start_tasks(config, store, webhook, delivery, intake, stopping, built)
        listeners = await _start_listeners(config, publisher, store, stack)
        fhir_listener = await _start_fhir_listener(config, publisher, store, stack)
        engine = Engine(
            config, store, broker, publisher, intake, delivery, 0, stack, tasks, stopping,
            listeners, fhir_listener,
        )  # fmt: skip
        engine.watch_tasks()
        await _serve_http(engine, stack)
        if config.console is not None:
            console_runner, engine.console_port = await start_console(
                store, config.console, on_replay=delivery.wake, engine_config=config
            )
            stack.push_async_callback(console_runner.cleanup)
    except BaseException:
        await stack.aclose()
        raise
    log.info(
        "engine.started",
        sources=[s.name for s in config.sources],
        destinations=[d.name for d in config.destinations],
        http_port=engine.http_port,
        hl7v2_mapping=_mapping_build(),
    )
    return engine


def _mapping_build() -> str:
    """Whether `mappings.hl7v2` runs compiled (tools/native.py) and, when not, why."""
    state = native.STATUS.get("mappings.hl7v2")
    if state is None:
        return "not imported"
    return "compiled" if state.compiled else f"plain Python ({state.reason})"


YOUNG_GENERATION = 10_000
"""Allocations between collections of the youngest generation, once started (CPython: 700)."""


def settle_heap() -> int:
    """Once set up: collect, then set everything alive now (modules, schemas, the config,
    code tables) aside from the garbage collector (`gc.freeze`); returns how many objects.

    A full collection walks every tracked object. Left alone, each one the engine made
    (about 130,000 objects after start) took 90 to 130 ms, a stall of intake and delivery alike
    every few seconds under load and the largest part of the p99 latency; now it walks only what
    was made since start, about 5 ms. A frozen object is still freed when nothing refers to it
    any more; only a reference cycle among frozen objects is never collected, which suits
    start-up objects kept for the engine's life. The youngest generation is then collected every
    `YOUNG_GENERATION` allocations: at 700 it was collected every few messages (about 800
    young and 70 middle collections per 3,000 messages, 0.37 s of the event loop), and most
    of a message's objects are gone by 10,000 (about 20 and 1, 0.15 s). Only `carebridge run`
    calls it: tests start and stop many engines in one process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
    frozen = gc.get_freeze_count()
    log.info("engine.heap_settled", frozen_objects=frozen)
    return frozen


async def run_until_signalled(config: Config) -> None:
    """`carebridge run`: start, then stop cleanly on SIGTERM or SIGINT."""
    engine = await start_engine(config, settle=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await engine.stop()
