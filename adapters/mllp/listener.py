"""The MLLP listener: accepts connections and hands each message, strictly one at a time per
connection, to the `handle` the composition root gives it; writes its answer back.

It moves bytes and never reads HL7. Logs carry peers, sizes and counts, never message bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from adapters.mllp.framing import READ_SIZE, Frame, MllpDecoder, frame

__all__ = ["Handle", "MllpListener", "PeerInfo", "RejectOversized"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who is on the other end of a connection."""

    host: str
    port: int
    tls: bool = False
    client_cn: str | None = None
    """The subject common name of the client's certificate, when TLS verified one."""


Handle = Callable[[bytes, PeerInfo], Awaitable[bytes]]
"""Gets one message, returns the answer to send (unframed); empty bytes: send nothing."""
RejectOversized = Callable[[bytes, PeerInfo], bytes | None]
"""Gets the start of a message that was too large; returns the answer, or None to hang up."""


def _peer_info(writer: asyncio.StreamWriter) -> PeerInfo:
    address = writer.get_extra_info("peername") or ("", 0)
    tls = writer.get_extra_info("ssl_object") is not None
    return PeerInfo(str(address[0]), int(address[1]), tls, _common_name(writer))


def _common_name(writer: asyncio.StreamWriter) -> str | None:
    cert: dict[str, Any] | None = writer.get_extra_info("peercert")
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


@dataclass(eq=False)
class _Connection:
    task: asyncio.Task[Any]
    busy: bool = False
    answered: int = 0


class MllpListener:
    """An MLLP server. Messages on one connection are handled strictly one at a time, in order.

    - `handle` gets each message and returns the answer (the engine builds AA/AE/AR after its
      commit); if it raises, the connection is closed unanswered and the sender will resend.
    - A frame larger than `max_message_bytes` goes to `reject_oversized` with its first bytes,
      never to `handle`; its answer is sent, or the connection is closed when there is none.
    - A frame begun but not finished within `frame_timeout`, or no new frame within
      `idle_timeout` of the last answer, closes the connection. Connections beyond
      `max_connections` are closed as soon as they are accepted. With TLS, the handshake must
      finish within `frame_timeout` too.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        handle: Handle,
        max_message_bytes: int = 1024 * 1024,
        frame_timeout: float = 30.0,
        idle_timeout: float = 600.0,
        max_connections: int = 32,
        ssl_context: ssl.SSLContext | None = None,
        reject_oversized: RejectOversized | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._host = host
        self._requested_port = port
        self._handle = handle
        self._reject_oversized = reject_oversized
        self._max_message_bytes = max_message_bytes
        self._frame_timeout = frame_timeout
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(
            self._accept,
            self._host,
            self._requested_port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._frame_timeout if self._ssl_context else None,
        )
        log.info("mllp.listening", host=self._host, port=self.port, tls=bool(self._ssl_context))

    @property
    def port(self) -> int:
        """The bound port (the one the system chose when asked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the listener is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        return len(self._connections)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, close idle connections, and give messages being handled `grace`
        seconds to be answered before their connections are closed too."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if not conn.busy:
                conn.task.cancel()
        tasks = [conn.task for conn in self._connections]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MllpListener:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_info(writer)
        task = asyncio.current_task()
        if self._closing or task is None or len(self._connections) >= self._max_connections:
            log.warning(
                "mllp.connection_refused",
                peer_host=peer.host,
                peer_port=peer.port,
                reason="closing" if self._closing else "connection limit",
                limit=self._max_connections,
            )
            writer.close()
            return
        conn = _Connection(task)
        self._connections.add(conn)
        log.info(
            "mllp.connection_opened",
            peer_host=peer.host,
            peer_port=peer.port,
            tls=peer.tls,
            client_cn=peer.client_cn,
        )
        try:
            await self._serve(conn, reader, writer, peer)
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("mllp.connection_lost", peer_host=peer.host, error=type(exc).__name__)
        finally:
            self._connections.discard(conn)
            log.info("mllp.connection_closed", peer_host=peer.host, messages=conn.answered)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: PeerInfo,
    ) -> None:
        loop = asyncio.get_running_loop()
        decoder = MllpDecoder(self._max_message_bytes)
        pending: deque[Frame] = deque()
        idle_since = loop.time()
        frame_started: float | None = None
        while True:
            while pending:
                conn.busy = True
                answer = await self._answer(pending.popleft(), peer, writer)
                if answer is None:
                    return
                if answer:
                    writer.write(answer)
                    await writer.drain()
                conn.busy = False
                conn.answered += 1
                idle_since = loop.time()
                if frame_started is not None:
                    frame_started = idle_since  # handling the last one is not the sender's time
                if self._closing:
                    return
            if frame_started is not None:
                deadline, expiry = frame_started + self._frame_timeout, "mllp.frame_timeout"
            else:
                deadline, expiry = idle_since + self._idle_timeout, "mllp.idle_timeout"
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                log.info(expiry, peer_host=peer.host, peer_port=peer.port)
                return
            if not data:
                if decoder.in_frame:
                    log.info("mllp.closed_mid_frame", peer_host=peer.host, peer_port=peer.port)
                return
            was_in_frame, discarded = decoder.in_frame, decoder.discarded
            frames = decoder.feed(data)
            if decoder.discarded > discarded:
                log.warning(
                    "mllp.bytes_discarded",
                    peer_host=peer.host,
                    count=decoder.discarded - discarded,
                )
            if not decoder.in_frame:
                frame_started = None
            elif frames or not was_in_frame:
                frame_started = loop.time()
            pending.extend(f for f in frames if f.oversized or f.payload.strip(b" \r\n"))

    async def _answer(
        self, received: Frame, peer: PeerInfo, writer: asyncio.StreamWriter
    ) -> bytes | None:
        """The framed answer to one frame (empty: send nothing); None closes the connection."""
        try:
            if received.oversized:
                log.warning(
                    "mllp.message_too_large", peer_host=peer.host, limit=self._max_message_bytes
                )
                if self._reject_oversized is None:
                    return None
                answer = self._reject_oversized(received.payload, peer)
            else:
                answer = await self._handle(received.payload, peer)
            if answer is None:
                return None
            return frame(answer) if answer else b""
        except Exception as exc:  # noqa: BLE001 - logged with its traceback, after the hang-up
            # Hang up first, so the sender learns at once and resends: rendering the traceback
            # can take a while under load. The transport closes its socket on the loop's next
            # turn, so give it that turn before the (synchronous) log line, which is written even
            # if the listener is being closed meanwhile.
            writer.close()
            try:
                await asyncio.sleep(0)
            finally:
                log.error(
                    "mllp.handle_failed", peer_host=peer.host, peer_port=peer.port, exc_info=exc
                )
            return None
