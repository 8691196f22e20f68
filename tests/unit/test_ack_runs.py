"""The frames `Deliveries.ack_all` sends: one `multiple` ack over a run of tags that all reached
the consumer and are settled, single acks beyond what bounds the run. What a frame acks at the
broker is tested in tests/contract/test_broker.py; here, that the run is as long as is safe."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from adapters.rabbitmq.consumer import Consumer, Deliveries, InboundDelivery

Frame = tuple[int, bool]


class Channel:
    """What a settlement calls on a pika channel, recording each ack as (tag, multiple)."""

    def __init__(self) -> None:
        self.is_open = True
        self.acks: list[Frame] = []

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acks.append((tag, multiple))


def arrive(consumer: Consumer, channel: Channel, *tags: int) -> None:
    for tag in tags:
        method = SimpleNamespace(delivery_tag=tag, redelivered=False, routing_key="a", exchange="")
        props = SimpleNamespace(headers=None, message_id=f"m{tag}", content_type=None)
        consumer.on_message(channel, method, props, b"")


def delivered(deliveries: Deliveries) -> list[InboundDelivery]:
    items: Any = deliveries._items
    taken = list(items)
    items.clear()
    return taken


def consumer() -> Consumer:
    return Consumer("q", Deliveries(), first_attempt=None)  # type: ignore[arg-type]


def test_a_run_of_tags_that_all_arrived_is_one_multiple_ack() -> None:
    reg, chan = consumer(), Channel()
    arrive(reg, chan, 1, 2, 3, 4)
    Deliveries.ack_all(delivered(reg.deliveries))
    assert chan.acks == [(4, True)]


def test_a_tag_that_never_arrived_ends_the_run_for_as_long_as_the_channel_lives() -> None:
    reg, chan = consumer(), Channel()
    arrive(reg, chan, 1, 2, 4, 5)  # 3 went elsewhere: outstanding at the broker
    Deliveries.ack_all(delivered(reg.deliveries))
    assert chan.acks == [(2, True), (4, False), (5, False)]
    arrive(reg, chan, 6, 7)
    Deliveries.ack_all(delivered(reg.deliveries))
    assert chan.acks[3:] == [(6, False), (7, False)]


def test_a_new_channel_numbers_from_one_and_its_runs_are_whole_again() -> None:
    reg, old, new = consumer(), Channel(), Channel()
    arrive(reg, old, 1, 2, 4)  # a gap on the old channel
    stale = delivered(reg.deliveries)
    old.is_open = False
    arrive(reg, new, 1, 2, 3)  # the redeliveries, on the channel opened after it
    Deliveries.ack_all([*stale, *delivered(reg.deliveries)])
    assert (old.acks, new.acks) == ([], [(3, True)])


def test_a_tag_that_comes_again_on_one_channel_leaves_only_single_acks_there() -> None:
    reg, chan = consumer(), Channel()
    arrive(reg, chan, 1, 2, 3, 2)  # numbering no longer to be trusted
    Deliveries.ack_all(delivered(reg.deliveries))
    assert [tag for tag, multiple in chan.acks if not multiple] == [1, 2, 3, 2]
