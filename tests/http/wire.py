"""HTTP on a raw socket, for tests that need what a library client will not do: trickle a
request head, stop half way through a body, send odd bytes in a header, or send only a head."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes


async def connect(port: int, tls: ssl.SSLContext | None = None) -> tuple[Reader, Writer]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=tls)


async def read_answer(reader: Reader, within: float = 10.0) -> Answer:
    """The next answer on the connection (a `100 Continue` is an answer too)."""
    async with asyncio.timeout(within):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        first, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(first.split()[1]), headers, body)


def head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in
             (headers or {}).items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def ask(port: int, raw: bytes, tls: ssl.SSLContext | None = None) -> Answer:
    """One request written as given, its answer read, the connection closed."""
    reader, writer = await connect(port, tls)
    try:
        writer.write(raw)
        await writer.drain()
        return await read_answer(reader)
    finally:
        writer.close()


def chunked(body: bytes, piece: int) -> list[bytes]:
    frames = [f"{len(body[i:i + piece]):x}\r\n".encode() + body[i:i + piece] + b"\r\n"
              for i in range(0, len(body), piece)]  # fmt: skip
    return [*frames, b"0\r\n\r\n"]


async def post(port: int, path: str, body: bytes, headers: dict[str, str], *,
               is_chunked: bool, piece: int = 64 * 1024) -> Answer:  # fmt: skip
    """POST `body` in pieces (chunked, or with Content-Length) and read the answer; a server
    that answers early and closes is fine (the answer is still read)."""
    if is_chunked:
        framing, pieces = {"Transfer-Encoding": "chunked"}, chunked(body, piece)
    else:
        framing = {"Content-Length": str(len(body))}
        pieces = [body[i : i + piece] for i in range(0, len(body), piece)]
    reader, writer = await connect(port)
    try:
        writer.write(head("POST", path, {**headers, **framing}))
        try:
            for bit in pieces:
                writer.write(bit)
                await writer.drain()
        except ConnectionError:
            pass
        return await read_answer(reader, within=30.0)
    finally:
        writer.close()


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], what: str,
                     within: float = 10.0) -> None:  # fmt: skip
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)


async def closed_by_server(reader: Reader, within: float = 10.0) -> bool:
    """True once the server closes the connection (EOF or reset), False if it stays open."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True
