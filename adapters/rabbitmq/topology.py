"""RabbitMQ topology as plain data, declared by `adapters.rabbitmq.Broker` on every (re)connect.

Declaring the same names with the same arguments again is a no-op for RabbitMQ, so the broker
re-declares after each reconnect. Declaring a name that exists with *different* arguments is
refused (406 PRECONDITION_FAILED): change arguments with a new queue name or a policy, never by
editing these values under a running system.

Everything here works on RabbitMQ 3.10 (Debian) as well as 4.x: quorum queues, an explicit
`x-delivery-limit` (3.x has no default; 4.x defaults to 20) and at-least-once dead lettering
(3.10+, needs `x-overflow: reject-publish`, which has no effect without a length limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from adapters.rabbitmq.channel import Chan

log = structlog.get_logger("adapters.rabbitmq")

ArgValue = str | int | bool

INBOUND_EXCHANGE = "carebridge.inbound"
INBOUND_DLX = "carebridge.inbound.dlx"


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    arguments: Mapping[str, ArgValue] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    name: str
    durable: bool = True
    arguments: Mapping[str, ArgValue] = field(default_factory=dict)

    @classmethod
    def quorum(
        cls,
        name: str,
        *,
        delivery_limit: int | None = None,
        dead_letter_exchange: str | None = None,
        at_least_once_dead_lettering: bool = True,
        single_active_consumer: bool = False,
    ) -> QueueSpec:
        """A durable quorum queue; with a DLX, dead lettering is at-least-once by default.

        With `single_active_consumer`, only one consumer at a time receives the queue's
        messages, the others standing by: several engine replicas then keep one source's order.
        """
        args: dict[str, ArgValue] = {"x-queue-type": "quorum"}
        if single_active_consumer:
            args["x-single-active-consumer"] = True
        if delivery_limit is not None:
            if delivery_limit < 1:
                raise ValueError(f"delivery_limit must be >= 1, got {delivery_limit}")
            args["x-delivery-limit"] = delivery_limit
        if dead_letter_exchange is not None:
            args["x-dead-letter-exchange"] = dead_letter_exchange
            if at_least_once_dead_lettering:
                args["x-dead-letter-strategy"] = "at-least-once"
                args["x-overflow"] = "reject-publish"
        return cls(name=name, durable=True, arguments=args)


@dataclass(frozen=True)
class BindingSpec:
    exchange: str
    queue: str
    routing_key: str = ""


@dataclass(frozen=True)
class Topology:
    """Exchanges, then queues, then bindings: declared in that order."""

    exchanges: Sequence[ExchangeSpec] = ()
    queues: Sequence[QueueSpec] = ()
    bindings: Sequence[BindingSpec] = ()

    def __post_init__(self) -> None:
        # Freeze the sequences so a Topology can be shared safely.
        object.__setattr__(self, "exchanges", tuple(self.exchanges))
        object.__setattr__(self, "queues", tuple(self.queues))
        object.__setattr__(self, "bindings", tuple(self.bindings))

    def __add__(self, other: Topology) -> Topology:
        return Topology(
            exchanges=(*self.exchanges, *other.exchanges),
            queues=(*self.queues, *other.queues),
            bindings=(*self.bindings, *other.bindings),
        )


def inbound_topology(
    sources: Sequence[str],
    *,
    exchange: str = INBOUND_EXCHANGE,
    delivery_limit: int = 5,
    dead_letter_exchange: str = INBOUND_DLX,
    at_least_once_dead_lettering: bool = True,
) -> Topology:
    """Direct exchange -> one quorum queue per source (`<exchange>.<source>`, routing key
    `<source>`), each with a delivery limit, a DLX and a single active consumer (so replicas
    take a source's messages in order, one engine at a time); a fanout DLX -> `<exchange>.dead`.
    """
    dead_queue = f"{exchange}.dead"
    seen: set[str] = set()
    for source in sources:
        if not source or source in seen or f"{exchange}.{source}" == dead_queue:
            raise ValueError(f"invalid or duplicate source name: {source!r}")
        seen.add(source)
    queues = [
        QueueSpec.quorum(
            f"{exchange}.{source}",
            delivery_limit=delivery_limit,
            dead_letter_exchange=dead_letter_exchange,
            at_least_once_dead_lettering=at_least_once_dead_lettering,
            single_active_consumer=True,
        )
        for source in sources
    ]
    return Topology(
        exchanges=[
            ExchangeSpec(exchange, "direct"),
            ExchangeSpec(dead_letter_exchange, "fanout"),
        ],
        queues=[*queues, QueueSpec.quorum(dead_queue)],
        bindings=[
            *(BindingSpec(exchange, f"{exchange}.{source}", source) for source in sources),
            BindingSpec(dead_letter_exchange, dead_queue, ""),
        ],
    )


async def declare(chan: Chan, topology: Topology, deadline: float) -> None:
    """Declare exchanges, then queues, then bindings on `chan` (each RPC within `deadline`)."""
    for ex in topology.exchanges:
        await chan.call(
            "exchange_declare",
            deadline,
            exchange=ex.name,
            exchange_type=ex.type,
            durable=ex.durable,
            auto_delete=ex.auto_delete,
            arguments=dict(ex.arguments),
        )
    for q in topology.queues:
        await chan.call(
            "queue_declare", deadline, queue=q.name, durable=q.durable, arguments=dict(q.arguments)
        )
    for b in topology.bindings:
        await chan.call(
            "queue_bind", deadline, queue=b.queue, exchange=b.exchange, routing_key=b.routing_key
        )
    log.info(
        "amqp.topology_declared",
        exchanges=len(topology.exchanges),
        queues=len(topology.queues),
        bindings=len(topology.bindings),
    )
