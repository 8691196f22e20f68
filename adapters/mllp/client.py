"""The MLLP client: one persistent connection to a destination, one message at a time
(`MllpClient`), and `send_and_wait` for one message on a connection of its own.

It moves bytes and never reads HL7. Logs carry hosts, never message bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import structlog

from adapters.errors import DestinationError, DestinationTimeout
from adapters.mllp.framing import READ_SIZE, MllpDecoder, frame

__all__ = ["MllpClient", "send_and_wait"]

log = structlog.get_logger(__name__)


class _ClosedBeforeAnswer(Exception):
    """The peer closed or reset the connection before sending a single byte back."""


class MllpClient:
    """A persistent MLLP connection to one destination, for one message at a time.

    `send` frames a message and waits for one framed answer within `timeout` seconds
    (connecting included). Any failure drops the connection, so the next `send` starts on a
    fresh one. A connection the destination closed while idle (hl7apy's server and others
    close after every answer) is noticed before it is used; if it closes or resets with no
    byte of an answer before that was seen, the message is sent once more on a new
    connection. That can deliver a message twice when the destination processed it and then
    dropped the connection unanswered: the stable MSH-10 lets the destination drop the repeat.

    Errors are `DestinationTimeout` (no answer in time: the outcome is unknown) and
    `DestinationError` (anything else). The answer is returned as sent; checking that its
    MSA-2 names the message just sent is the caller's job.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        max_answer_bytes: int = 1024 * 1024,
    ) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._max_answer_bytes = max_answer_bytes
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = MllpDecoder(max_answer_bytes)

    async def send(self, message: bytes) -> bytes:
        """Send one message; return the destination's answer (unframed)."""
        framed = frame(message)
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._exchange(framed)
            except TimeoutError as exc:
                await self._drop()
                raise DestinationTimeout(f"no answer within {self._timeout:g}s") from exc
            except _ClosedBeforeAnswer as exc:
                await self._drop()
                raise DestinationError("the connection was closed without an answer") from exc
            except (OSError, EOFError) as exc:
                await self._drop()
                raise DestinationError(f"{type(exc).__name__}: {exc}") from exc
            except DestinationError:
                await self._drop()
                raise

    async def close(self) -> None:
        """Close the connection, if one is open."""
        async with self._lock:
            await self._drop()

    async def __aenter__(self) -> MllpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _exchange(self, framed: bytes) -> bytes:
        reused = self._usable()
        if not reused:
            await self._connect()
        try:
            return await self._round_trip(framed)
        except _ClosedBeforeAnswer:
            if not reused:
                raise
            log.debug("mllp.client_resend", host=self._host, port=self._port)
            await self._connect()
            return await self._round_trip(framed)

    def _usable(self) -> bool:
        return (
            self._reader is not None
            and self._writer is not None
            and not self._reader.at_eof()
            and not self._writer.is_closing()
        )

    async def _connect(self) -> None:
        await self._drop()
        self._reader, self._writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl_context,
            server_hostname=(self._server_hostname or self._host) if self._ssl_context else None,
        )
        self._decoder = MllpDecoder(self._max_answer_bytes)

    async def _round_trip(self, framed: bytes) -> bytes:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise _ClosedBeforeAnswer()
        answered = False
        try:
            writer.write(framed)
            await writer.drain()
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    if not answered:
                        raise _ClosedBeforeAnswer()
                    raise DestinationError("the connection closed in the middle of the answer")
                answered = True
                frames = self._decoder.feed(data)
                if frames:
                    break
        except (ConnectionResetError, BrokenPipeError) as exc:
            if answered:
                raise
            raise _ClosedBeforeAnswer(str(exc)) from exc
        if frames[0].oversized:
            raise DestinationError(f"answer larger than {self._max_answer_bytes} bytes")
        if len(frames) > 1 or self._decoder.in_frame:
            # More than one answer to one message: which belongs to the next is unknowable.
            log.warning("mllp.client_unexpected_bytes", host=self._host, port=self._port)
            await self._drop()
        return frames[0].payload

    async def _drop(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def send_and_wait(
    host: str,
    port: int,
    message: bytes,
    *,
    timeout: float,  # noqa: ASYNC109 - the deadline covers connect, send and answer as one
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> bytes:
    """Send one message on a connection of its own and return the answer (see `MllpClient`)."""
    async with MllpClient(
        host, port, timeout=timeout, ssl_context=ssl_context, server_hostname=server_hostname
    ) as client:
        return await client.send(message)
