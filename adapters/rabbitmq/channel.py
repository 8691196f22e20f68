"""pika glue shared by the supervisor, the publisher and the consumers.

Every callback handed to pika goes through `guarded` (an exception escaping into pika aborts the
whole connection); a `Chan` turns a pika channel's RPCs into awaitables that fail when the
channel closes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, ParamSpec

import pika
import pika.exceptions
import structlog
from pika.adapters.asyncio_connection import AsyncioConnection

log = structlog.get_logger("adapters.rabbitmq")
P = ParamSpec("P")


def guarded(fn: Callable[P, None]) -> Callable[P, None]:
    """Wrap a pika callback so that no exception can escape into pika."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("amqp.callback_failed", callback=getattr(fn, "__qualname__", "?"))

    return wrapper


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)


def set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class ChannelLost(Exception):
    def __init__(self, reason: BaseException) -> None:
        super().__init__(describe(reason))
        self.reason = reason


class Chan:
    """A pika channel plus a future that completes (with the reason) when it closes."""

    def __init__(self, channel: Any, closed: asyncio.Future[BaseException]) -> None:
        self.channel = channel
        self.closed = closed

    @property
    def is_open(self) -> bool:
        return not self.closed.done() and bool(self.channel.is_open)

    async def wait(self, fut: asyncio.Future[Any], deadline: float) -> Any:
        """The result of `fut`, unless the channel closes or `deadline` seconds pass first."""
        async with asyncio.timeout(deadline):
            await asyncio.wait([fut, self.closed], return_when=asyncio.FIRST_COMPLETED)
        if fut.done():
            return fut.result()
        raise ChannelLost(self.closed.result())

    async def call(self, method: str, deadline: float, **kwargs: Any) -> Any:
        """Run a pika channel RPC (e.g. "queue_declare") and return its OK frame."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        getattr(self.channel, method)(
            callback=guarded(functools.partial(set_result, done)), **kwargs
        )
        return await self.wait(done, deadline)


async def open_channel(
    conn: Any, on_closed: Callable[[Chan, BaseException], None], deadline: float
) -> Chan:
    """A new channel on `conn`; `on_closed` runs (guarded) when it closes."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    closed: asyncio.Future[BaseException] = loop.create_future()
    channel = conn.channel(on_open_callback=guarded(functools.partial(set_result, opened)))
    chan = Chan(channel, closed)

    def on_close(_channel: Any, reason: BaseException) -> None:
        set_result(closed, reason)
        on_closed(chan, reason)

    channel.add_on_close_callback(guarded(on_close))
    try:
        await chan.wait(opened, deadline)
    except BaseException:
        close_channel(chan)
        raise
    return chan


async def open_connection(
    params: Any, deadline: float, on_closed: Callable[[Any, BaseException], None]
) -> tuple[Any, asyncio.Future[BaseException]]:
    """An open AsyncioConnection and a future completed (with the reason) when it closes."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    closed: asyncio.Future[BaseException] = loop.create_future()

    def on_open_error(_conn: Any, exc: BaseException) -> None:
        if not opened.done():
            opened.set_exception(exc)

    def on_close(conn: Any, reason: BaseException) -> None:
        set_result(closed, reason)
        on_closed(conn, reason)

    conn = AsyncioConnection(
        params,
        on_open_callback=guarded(functools.partial(set_result, opened)),
        on_open_error_callback=guarded(on_open_error),
        on_close_callback=guarded(on_close),
        custom_ioloop=loop,
    )
    try:
        async with asyncio.timeout(deadline):
            await opened
    except BaseException:
        close_connection(conn)
        raise
    return conn, closed


async def open_any_connection(
    nodes: list[Any], first: int, deadline: float,
    on_closed: Callable[[Any, BaseException], None],
) -> tuple[int, Any, asyncio.Future[BaseException]]:  # fmt: skip
    """`open_connection` to the first node that answers, trying `nodes` in turn from `first`;
    returns the node's index too. The last node's error is raised if none answers."""
    error: BaseException | None = None
    for step in range(len(nodes)):
        index = (first + step) % len(nodes)
        try:
            conn, closed = await open_connection(nodes[index], deadline, on_closed)
        except Exception as exc:  # noqa: BLE001 - the next node may answer
            error = exc
            continue
        return index, conn, closed
    assert error is not None
    raise error


def is_permanent(exc: BaseException) -> bool:
    """Errors that retrying will not fix without an operator (only used to fail start() fast)."""
    reason = exc.reason if isinstance(exc, ChannelLost) else exc
    return isinstance(
        reason,
        pika.exceptions.ChannelClosedByBroker
        | pika.exceptions.ProbableAuthenticationError
        | pika.exceptions.ProbableAccessDeniedError,
    )


def close_connection(conn: Any) -> None:
    try:
        if not (conn.is_closing or conn.is_closed):
            conn.close()
    except pika.exceptions.AMQPError as exc:
        log.debug("amqp.close_ignored", error=describe(exc))


def close_channel(chan: Chan) -> None:
    try:
        if chan.channel.is_open or chan.channel.is_opening:
            chan.channel.close()
    except pika.exceptions.AMQPError as exc:
        log.debug("amqp.close_ignored", error=describe(exc))
