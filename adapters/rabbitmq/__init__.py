"""RabbitMQ: a small awaitable facade over pika's AsyncioConnection.

settings.py    AmqpSettings: URL, prefetch, timeouts, backoff, TLS
topology.py    exchanges, queues and bindings as plain data, and their declaration
channel.py     pika glue: guarded callbacks, channels with awaitable RPCs
publisher.py   one channel in confirm mode; pending confirms fail when it is lost
consumer.py    deliveries with manual acks, and the consumers that receive them
connection.py  Broker: the supervised connection that rebuilds all of the above
"""

from adapters.rabbitmq.connection import Broker
from adapters.rabbitmq.consumer import Deliveries, Handler, InboundDelivery
from adapters.rabbitmq.publisher import TAG_HEADER, HeaderValue
from adapters.rabbitmq.settings import AmqpSettings
from adapters.rabbitmq.topology import (
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
    "TAG_HEADER",
    "AmqpSettings",
    "BindingSpec",
    "Broker",
    "Deliveries",
    "ExchangeSpec",
    "Handler",
    "HeaderValue",
    "InboundDelivery",
    "QueueSpec",
    "Topology",
    "inbound_topology",
]
