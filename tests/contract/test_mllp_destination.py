"""One contract, two implementations: `tests.fakes.FakeLink` and the real
`adapters.mllp.MllpClient` against an `MllpListener` on loopback. `MllpSender` is unit-tested
against the fake; these tests keep it honest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from adapters.errors import DestinationError, DestinationTimeout
from adapters.mllp import MllpClient, MllpListener, PeerInfo
from engine.delivery.mllp import MllpLink
from tests.fakes import FakeLink, MllpReceiver

TIMEOUT = 2.0
"""Long enough for the listener to log a failing receiver's traceback and close under load: the
test environment's log renderer (rich, with locals) took over 0.3 s at a load of 3.5 on two
cores, and the close then came after the client's timeout."""
MESSAGE = b"MSH|^~\\&|CB|CB|R|R|20260701||ADT^A03^ADT_A03|CB1|P|2.4\rEVN|A03\r"
ACK = b"MSH|^~\\&|R|R|CB|CB|20260701||ACK|R1|P|2.4\rMSA|AA|CB1\r"


class Destination(Protocol):
    @property
    def link(self) -> MllpLink: ...

    @property
    def received(self) -> list[bytes]: ...

    def answer_with(self, receiver: MllpReceiver) -> None: ...

    async def stop(self) -> None: ...


async def acks(_message: bytes) -> bytes:
    return ACK


@dataclass
class Faked:
    fake: FakeLink = field(default_factory=lambda: FakeLink(acks, timeout=TIMEOUT))

    @property
    def link(self) -> MllpLink:
        return self.fake

    @property
    def received(self) -> list[bytes]:
        return self.fake.sent

    def answer_with(self, receiver: MllpReceiver) -> None:
        self.fake.receiver = receiver

    async def stop(self) -> None:
        self.fake.reachable = False


@dataclass
class Real:
    listener: MllpListener | None = None
    client: MllpClient | None = None
    receiver: MllpReceiver = acks
    received: list[bytes] = field(default_factory=list)

    @property
    def link(self) -> MllpLink:
        assert self.client is not None
        return self.client

    def answer_with(self, receiver: MllpReceiver) -> None:
        self.receiver = receiver

    async def start(self) -> None:
        self.listener = MllpListener("127.0.0.1", 0, handle=self._handle)
        await self.listener.start()
        self.client = MllpClient("127.0.0.1", self.listener.port, timeout=TIMEOUT)

    async def _handle(self, message: bytes, _peer: PeerInfo) -> bytes:
        self.received.append(message)
        return await self.receiver(message)

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.close(grace=0)
            self.listener = None


@pytest.fixture(params=["fake", "real"])
async def destination(request: pytest.FixtureRequest) -> AsyncIterator[Destination]:
    if request.param == "fake":
        yield Faked()
        return
    real = Real()
    await real.start()
    yield real
    await real.stop()
    await real.link.close()


async def test_the_message_arrives_and_the_answer_comes_back_unframed(
    destination: Destination,
) -> None:
    assert await destination.link.send(MESSAGE) == ACK
    assert destination.received == [MESSAGE]


async def test_messages_go_one_at_a_time_in_order(destination: Destination) -> None:
    order: list[bytes] = []

    async def echo(message: bytes) -> bytes:
        order.append(message)
        return b"MSA|AA|" + message[-1:]

    destination.answer_with(echo)
    messages = [MESSAGE + bytes([ord("0") + i]) for i in range(5)]
    answers = await asyncio.gather(*(destination.link.send(m) for m in messages))
    assert answers == [b"MSA|AA|" + m[-1:] for m in messages]
    assert order == messages


async def test_after_close_the_next_message_goes_on_a_new_connection(
    destination: Destination,
) -> None:
    assert await destination.link.send(MESSAGE) == ACK
    await destination.link.close()
    assert await destination.link.send(MESSAGE) == ACK


async def test_no_answer_within_the_timeout_is_a_timeout(destination: Destination) -> None:
    async def silent(_message: bytes) -> bytes:
        return b""  # the listener sends nothing back

    destination.answer_with(silent)
    with pytest.raises(DestinationTimeout):
        await destination.link.send(MESSAGE)


async def test_a_failing_receiver_closes_the_connection_unanswered(
    destination: Destination,
) -> None:
    async def broken(_message: bytes) -> bytes:
        raise RuntimeError("bug in the receiver")

    destination.answer_with(broken)
    with pytest.raises(DestinationError) as caught:
        await destination.link.send(MESSAGE)
    assert not isinstance(caught.value, DestinationTimeout)


async def test_a_stopped_destination_is_not_reached_and_that_is_no_timeout(
    destination: Destination,
) -> None:
    assert await destination.link.send(MESSAGE) == ACK
    await destination.stop()
    with pytest.raises(DestinationError) as caught:
        await destination.link.send(MESSAGE)
    assert not isinstance(caught.value, DestinationTimeout)
