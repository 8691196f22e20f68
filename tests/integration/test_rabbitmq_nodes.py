"""A broker named by several node URLs: the first node that answers is used, and none
answering is an error at start. (A lost connection re-made to another node is proven on a real
three-node cluster by tests/faults/test_rabbit_cluster.py.)"""

from __future__ import annotations

import pytest

from adapters.errors import BrokerUnavailable
from adapters.rabbitmq import AmqpSettings, Broker
from tests.conftest import AMQP_URL
from tests.e2e.harness import free_port

pytestmark = pytest.mark.integration


async def test_a_node_that_does_not_answer_is_passed_over() -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    settings = AmqpSettings(url=dead, alternates=(AMQP_URL,), connection_name="nodes-test",
                            connect_timeout=3.0)  # fmt: skip
    async with Broker(settings) as broker:
        assert broker.connected


async def test_no_node_answering_is_an_error() -> None:
    dead = [f"amqp://guest:guest@127.0.0.1:{free_port()}/" for _ in range(2)]
    settings = AmqpSettings(url=dead[0], alternates=(dead[1],), connect_timeout=2.0,
                            reconnect_initial_delay=0.1, reconnect_max_delay=0.2)  # fmt: skip
    broker = Broker(settings)
    with pytest.raises(BrokerUnavailable):
        await broker.start(timeout=3.0)
    await broker.close()
