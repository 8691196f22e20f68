"""One contract, two implementations: `tests.fakes.FakeHttp` and the real
`adapters.webhook.WebhookClient` against an aiohttp server on loopback. The HTTP senders
(webhook, FHIR, notification) are unit-tested against the fake; these tests keep it honest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import pytest
from aiohttp import web

from adapters.errors import DestinationError, DestinationTimeout
from adapters.webhook import HttpResponse, WebhookClient
from engine.delivery.http import PostFn, retry_after
from tests.e2e.harness import free_port
from tests.fakes import FakeHttp, HttpReceiver, HttpRequest

DEADLINE = 0.3


class Destination(Protocol):
    url: str

    @property
    def post(self) -> PostFn: ...

    @property
    def received(self) -> list[HttpRequest]: ...

    def answer_with(self, receiver: HttpReceiver) -> None: ...

    async def stop(self) -> None: ...


async def ok(_request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, b"ok")


@dataclass
class Faked:
    fake: FakeHttp = field(default_factory=FakeHttp)
    url: str = "http://receiver.example/hook"

    @property
    def post(self) -> PostFn:
        return self.fake.post

    @property
    def received(self) -> list[HttpRequest]:
        return self.fake.requests

    def answer_with(self, receiver: HttpReceiver) -> None:
        self.fake.receiver = receiver

    async def stop(self) -> None:
        self.fake.reachable = False


@dataclass
class Real:
    """A real aiohttp server whose handler hands each request to the receiver."""

    client: WebhookClient
    runner: web.AppRunner | None = None
    url: str = ""
    receiver: HttpReceiver = ok
    received: list[HttpRequest] = field(default_factory=list)

    @property
    def post(self) -> PostFn:
        return self.client.post

    def answer_with(self, receiver: HttpReceiver) -> None:
        self.receiver = receiver

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client gone (its deadline passed) cancels the handler still waiting to answer.
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        got = HttpRequest(str(request.url), await request.read(), dict(request.headers))
        self.received.append(got)
        answer = await self.receiver(got)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture(params=["fake", "real"])
async def destination(request: pytest.FixtureRequest) -> AsyncIterator[Destination]:
    if request.param == "fake":
        faked = Faked()
        faked.answer_with(ok)
        yield faked
        return
    async with WebhookClient() as client:
        real = Real(client)
        await real.start()
        yield real
        await real.stop()


async def test_the_body_and_headers_arrive_and_the_answer_comes_back(
    destination: Destination,
) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "ev-1.hook"}
    answer = await destination.post(destination.url, b'{"a": 1}', headers, DEADLINE)
    assert (answer.status, answer.body) == (200, b"ok")
    [got] = destination.received
    assert got.body == b'{"a": 1}'
    assert {k: got.headers[k] for k in headers} == headers


async def test_retry_after_is_kept_and_other_headers_are_not(destination: Destination) -> None:
    async def throttled(_request: HttpRequest) -> HttpResponse:
        return HttpResponse(429, b"slow down", {"Retry-After": "30", "X-Trace": "abc"})

    destination.answer_with(throttled)
    answer = await destination.post(destination.url, b"{}", {}, DEADLINE)
    assert (answer.status, retry_after(answer.headers)) == (429, 30.0)
    assert "x-trace" not in {k.lower() for k in answer.headers}


async def test_a_redirect_is_an_answer_not_followed(destination: Destination) -> None:
    async def moved(_request: HttpRequest) -> HttpResponse:
        return HttpResponse(302, b"", {"Location": "http://elsewhere.example/"})

    destination.answer_with(moved)
    answer = await destination.post(destination.url, b"{}", {}, DEADLINE)
    assert answer.status == 302
    assert len(destination.received) == 1


async def test_a_long_answer_is_cut_at_64_kib(destination: Destination) -> None:
    async def verbose(_request: HttpRequest) -> HttpResponse:
        return HttpResponse(500, b"x" * (100 * 1024))

    destination.answer_with(verbose)
    answer = await destination.post(destination.url, b"{}", {}, DEADLINE)
    assert (answer.status, len(answer.body)) == (500, 64 * 1024)


async def test_a_failing_receiver_is_a_server_error(destination: Destination) -> None:
    async def broken(_request: HttpRequest) -> HttpResponse:
        raise RuntimeError("bug in the receiver")

    destination.answer_with(broken)
    answer = await destination.post(destination.url, b"{}", {}, DEADLINE)
    assert answer.status == 500


async def test_no_answer_within_the_deadline_is_a_timeout(destination: Destination) -> None:
    async def silent(_request: HttpRequest) -> HttpResponse:
        await asyncio.Event().wait()  # never answers; the deadline ends the wait
        raise AssertionError("unreachable")

    destination.answer_with(silent)
    with pytest.raises(DestinationTimeout):
        await destination.post(destination.url, b"{}", {}, DEADLINE)


async def test_a_stopped_destination_is_not_reached_and_that_is_no_timeout(
    destination: Destination,
) -> None:
    await destination.stop()
    with pytest.raises(DestinationError) as caught:
        await destination.post(destination.url, b"{}", {}, DEADLINE)
    assert not isinstance(caught.value, DestinationTimeout)
