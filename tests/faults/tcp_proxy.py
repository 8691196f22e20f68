"""An asyncio TCP proxy between the engine and the broker, with faults the test controls.

- pass: bytes flow both ways;
- blackhole: connections stay open but nothing flows (new ones are accepted and held), like a
  network partition: TCP keeps the bytes and delivers them if the path heals in time;
- reset: every open connection is closed with an RST on both sides;
- latency: each chunk is held this many seconds before it is forwarded (order kept);
- drop_answers: what the client sends flows on, what the server answers is thrown away (an
  answer lost after the server acted on the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.latency = 0.0
        self.accepted = 0
        self.answers = True
        """False: bytes from the server are dropped (`drop_answers`)."""

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def pass_through(self) -> None:
        self.latency = 0.0
        self.answers = True
        self._flowing.set()

    def drop_answers(self) -> None:
        self.answers = False

    def blackhole(self) -> None:
        self._flowing.clear()

    def reset(self) -> int:
        """RST every open connection; returns how many were cut."""
        links = list(self._links)
        for link in links:
            self._drop(link, rst=True)
        return len(links)

    async def close(self) -> None:
        self._flowing.set()
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._drop(link, rst=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def _drop(self, link: _Link, *, rst: bool) -> None:
        self._links.discard(link)
        for writer in (link.client, link.upstream):
            if writer is None:
                continue
            if rst:
                _abort_with_rst(writer)
            else:
                writer.close()
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._flowing.wait()  # a blackhole holds new connections too
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except (OSError, asyncio.CancelledError):
            self._drop(link, rst=True)
            return
        if link not in self._links:  # reset meanwhile
            up_writer.transport.abort()
            return
        link.upstream = up_writer
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link, answer=True)),
        ]

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        answer: bool = False,
    ) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                if self.latency:
                    await asyncio.sleep(self.latency)
                await self._flowing.wait()
                if answer and not self.answers:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return
        if link in self._links:
            self._drop(link, rst=False)
