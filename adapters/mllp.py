"""MLLP over asyncio: framing, a listener, and a client for MLLP destinations.

    MllpDecoder     bytes in, complete frames out: no sockets, tested by feeding it bytes
    MllpListener    accepts connections; hands each message to `handle`, writes its answer
    MllpClient      one persistent connection to a destination: frame, send, wait for the ACK
    send_and_wait   one message on a connection of its own

Framing is ``<VT 0x0B> message <FS 0x1C><CR 0x0D>``, read leniently:

- bytes before a start byte are discarded (and counted, for a log line); CR and LF between
  frames are not counted: they are the usual trailing CR or line noise;
- a frame ends at FS; the CR after it is expected but not required (it is dropped as a byte
  between frames, whenever it arrives);
- a start byte inside a frame means the sender gave up on that frame and began again: the
  partial frame is discarded unanswered, and the sender will resend it;
- a frame longer than `max_message_bytes` is read to its end but only its first
  `max_message_bytes` are kept, and it is reported as oversized.

This module moves bytes and never reads HL7: what a message means and what to answer is
decided by the callables the composition root hands the listener. Logs carry peers, sizes and
counts, never message bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from adapters.errors import DestinationError, DestinationTimeout

__all__ = [
    "CARRIAGE_RETURN",
    "END_BLOCK",
    "START_BLOCK",
    "Frame",
    "Handle",
    "MllpClient",
    "MllpDecoder",
    "MllpListener",
    "PeerInfo",
    "RejectOversized",
    "client_ssl_context",
    "frame",
    "send_and_wait",
    "server_ssl_context",
]

log = structlog.get_logger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
_READ_SIZE = 64 * 1024
_BETWEEN_FRAMES = b"\r\n"


def frame(message: bytes) -> bytes:
    """`message` wrapped in MLLP start and end bytes.

    A message containing a start or end byte cannot be framed: it would end early and the rest
    would be read as the next message. HL7 text never holds them (they are escaped as ``\\Xhh\\``).
    """
    if START_BLOCK in message or END_BLOCK in message:
        raise ValueError("a message holding an MLLP start or end byte cannot be framed")
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame's content, without the framing bytes."""

    payload: bytes
    oversized: bool = False
    """The frame was longer than the limit: `payload` holds only its first bytes."""


class MllpDecoder:
    """Turns a byte stream into frames. Feed it whatever arrives; it keeps partial frames."""

    def __init__(self, max_message_bytes: int) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._in_frame = False
        self._oversized = False
        self.discarded = 0
        """Bytes thrown away so far: junk before a start byte and abandoned partial frames."""

    @property
    def in_frame(self) -> bool:
        """True between a start byte and its end byte."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame]:
        """The frames `data` completes, in order."""
        frames: list[Frame] = []
        pos, size = 0, len(data)
        while pos < size:
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                self._junk(data[pos : size if start < 0 else start])
                if start < 0:
                    break
                self._begin()
                pos = start + 1
                continue
            end = data.find(END_BLOCK, pos)
            stop = size if end < 0 else end
            restart = data.find(START_BLOCK, pos, stop)
            if restart >= 0:
                self.discarded += len(self._buffer) + (restart - pos) + 1
                self._begin()
                pos = restart + 1
                continue
            self._append(data[pos:stop])
            if end < 0:
                break
            frames.append(Frame(bytes(self._buffer), self._oversized))
            self._in_frame = False
            self._buffer.clear()
            pos = end + 1
        return frames

    def _begin(self) -> None:
        self._in_frame = True
        self._oversized = False
        self._buffer.clear()

    def _append(self, chunk: bytes) -> None:
        room = self._max - len(self._buffer)
        if len(chunk) > room:
            self._oversized = True
            chunk = chunk[: max(room, 0)]
        self._buffer += chunk

    def _junk(self, chunk: bytes) -> None:
        self.discarded += len(chunk) - sum(chunk.count(b) for b in (b"\r", b"\n"))


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


def server_ssl_context(
    cert: str | Path,
    key: str | Path,
    ca: str | Path | None = None,
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """TLS for a listener: its certificate and key and, to check client certificates, a CA.

    With `require_client_cert` a client without a certificate signed by `ca` cannot connect;
    with only `ca`, a client certificate is checked when one is offered.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca is not None:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ValueError("requiring client certificates needs the CA that signs them")
    return context


def client_ssl_context(
    ca: str | Path | None = None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """TLS for a client: the CA to trust (default: the system's) and an optional client
    certificate."""
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    context.check_hostname = check_hostname
    return context


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
                answer = await self._answer(pending.popleft(), peer)
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
                    data = await reader.read(_READ_SIZE)
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

    async def _answer(self, received: Frame, peer: PeerInfo) -> bytes | None:
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
        except Exception:
            log.exception("mllp.handle_failed", peer_host=peer.host, peer_port=peer.port)
            return None


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
                data = await reader.read(_READ_SIZE)
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
