"""In-memory stand-ins for the delivery transports, held to the real adapters' contract.

`FakeHttp.post` stands in for `adapters.webhook.WebhookClient.post` and `FakeLink` for
`adapters.mllp.MllpClient`. Both hand each request to a *receiver* (an async function, the
destination's side) as the real adapters hand it to a real server, and keep the rules the real
ones keep: the deadline, the bounded answer, the headers kept, the errors raised.
tests/contract/ runs the same tests against each fake and the real adapter on loopback, so a
fake cannot drift from what it stands for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from adapters.errors import DestinationError, DestinationTimeout, TransportError
from adapters.webhook import HttpResponse

MAX_ANSWER = 64 * 1024
"""What `WebhookClient` reads of an answer."""
KEPT_HEADERS = frozenset({"retry-after", "location", "content-type"})
"""The answer headers `WebhookClient` keeps."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    url: str
    body: bytes
    headers: Mapping[str, str]


HttpReceiver = Callable[[HttpRequest], Awaitable[HttpResponse]]


def answering(*answers: HttpResponse | Exception) -> HttpReceiver:
    """A receiver giving these answers in turn; an exception stands for a failed transport
    (raised by the fake as the adapter would raise it)."""
    queue = list(answers)

    async def receive(_request: HttpRequest) -> HttpResponse:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return receive


@dataclass
class FakeHttp:
    """`post(url, body, headers, deadline)` to an in-memory receiver."""

    receiver: HttpReceiver = field(default_factory=lambda: answering())
    requests: list[HttpRequest] = field(default_factory=list)
    reachable: bool = True

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> HttpResponse:
        if not self.reachable:
            raise DestinationError("ClientConnectorError: connection refused")
        request = HttpRequest(url, body, dict(headers))
        self.requests.append(request)
        try:
            answer = await asyncio.wait_for(self.receiver(request), deadline)
        except TimeoutError as exc:
            raise DestinationTimeout(f"no answer within {deadline:g}s") from exc
        except TransportError:
            raise
        except Exception:  # a server whose handler fails answers 500
            answer = HttpResponse(500, b"500 Internal Server Error")
        kept = {k: v for k, v in answer.headers.items() if k.lower() in KEPT_HEADERS}
        return HttpResponse(answer.status, answer.body[:MAX_ANSWER], kept)


MllpReceiver = Callable[[bytes], Awaitable[bytes]]
"""Gets each message and returns the answer, empty to send nothing back; raising closes the
connection unanswered (as `adapters.mllp.MllpListener`'s handle)."""


def acking(*answers: bytes | Exception) -> MllpReceiver:
    """A receiver giving these answers in turn (the last one from then on); an exception
    stands for a failed transport (raised by the fake as the adapter would raise it)."""
    queue = list(answers)

    async def receive(_message: bytes) -> bytes:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return receive


@dataclass
class FakeLink:
    """An MLLP connection to an in-memory receiver, one message at a time."""

    receiver: MllpReceiver
    timeout: float = 5.0
    sent: list[bytes] = field(default_factory=list)
    closed: int = 0
    reachable: bool = True
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, message: bytes) -> bytes:
        async with self._lock:
            if not self.reachable:
                raise DestinationError("ConnectionRefusedError: connection refused")
            self.sent.append(message)
            try:
                answer = await asyncio.wait_for(self.receiver(message), self.timeout)
            except TimeoutError as exc:
                raise DestinationTimeout(f"no answer within {self.timeout:g}s") from exc
            except TransportError:
                raise
            except Exception as exc:  # a listener whose handler fails closes the connection
                raise DestinationError("the connection was closed without an answer") from exc
            if not answer:  # nothing sent back: the real client waits out its timeout
                raise DestinationTimeout(f"no answer within {self.timeout:g}s")
            return answer

    async def close(self) -> None:
        self.closed += 1
