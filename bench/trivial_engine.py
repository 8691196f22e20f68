"""The trivial engine: the least an engine on this broker must do, as the yardstick for ours.

    queue IN ─consume (manual ack, prefetch)─► split-parse 15 HL7v2 fields ─► JSON
             ─publish (persistent, confirms)─► queue OUT ─► ack IN once OUT's confirm is back

pika's AsyncioConnection, one process, no store: what is left when parsing, mapping, the store
and delivery cost nothing. `bench/end_to_end.py` runs it in the same run as the engine and
prints the engine's throughput as a share of this one's, so machines and days compare.

    python bench/trivial_engine.py --amqp URL --queue IN --out OUT [--prefetch 200]

Prints ``ready`` on stdout once it consumes; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import pika
from pika.adapters.asyncio_connection import AsyncioConnection

# (segment, field index) pairs: the 15 fields a minimal ADT router reads.
FIELDS: tuple[tuple[str, int], ...] = (
    ("MSH", 3), ("MSH", 4), ("MSH", 6), ("MSH", 7), ("MSH", 9), ("MSH", 10),
    ("EVN", 2), ("PID", 3), ("PID", 5), ("PID", 7), ("PID", 8),
    ("PV1", 2), ("PV1", 3), ("PV1", 19), ("PV1", 45),
)  # fmt: skip


def split_parse(body: bytes) -> dict[str, str]:
    """The 15 fields by splitting on the separators (MSH counts its field separator as MSH-1)."""
    segments: dict[str, list[bytes]] = {}
    for line in body.replace(b"\n", b"\r").split(b"\r"):
        name = line[:3].decode("ascii", "replace")
        if len(line) > 3 and name not in segments:
            segments[name] = line.split(b"|")
    out: dict[str, str] = {}
    for name, index in FIELDS:
        fields = segments.get(name)
        position = index - 1 if name == "MSH" else index
        if fields is not None and position < len(fields):
            out[f"{name}-{index}"] = fields[position].decode("utf-8", "replace")
    return out


class Trivial:
    def __init__(self, url: str, queue: str, out: str, prefetch: int) -> None:
        self._params = pika.URLParameters(url)
        self._queue, self._out, self._prefetch = queue, out, prefetch
        self._channel: Any = None
        self._published = 0
        self._pending: dict[int, int] = {}
        """Our publish sequence number -> the inbound delivery tag it carries."""
        self._stopped = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        AsyncioConnection(
            self._params,
            on_open_callback=lambda conn: conn.channel(on_open_callback=self._on_channel),
            on_open_error_callback=lambda _c, exc: self._fail(exc),
            on_close_callback=lambda _c, exc: self._fail(exc),
            custom_ioloop=asyncio.get_running_loop(),
        )

    def _fail(self, exc: BaseException) -> None:
        if not self._stopped.done():
            self._stopped.set_exception(RuntimeError(f"connection lost: {exc!r}"))

    def _on_channel(self, channel: Any) -> None:
        self._channel = channel
        channel.confirm_delivery(self._on_confirm)
        channel.basic_qos(prefetch_count=self._prefetch, callback=self._on_qos)

    def _on_qos(self, _frame: Any) -> None:
        self._channel.basic_consume(self._queue, self._on_message)
        print("ready", flush=True)

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        event = split_parse(body)
        channel.basic_publish(
            "", self._out, orjson.dumps(event),
            pika.BasicProperties(delivery_mode=2, message_id=props.message_id),
        )  # fmt: skip
        self._published += 1
        self._pending[self._published] = method.delivery_tag

    def _on_confirm(self, frame: Any) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        done = [t for t in self._pending if t <= tag] if multiple else [tag]
        for ours in sorted(done):
            inbound = self._pending.pop(ours, None)
            if inbound is not None:
                self._channel.basic_ack(inbound)

    async def wait(self) -> None:
        await self._stopped


async def run(argv: Sequence[str] | None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--amqp", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prefetch", type=int, default=200)
    args = ap.parse_args(argv)
    trivial = Trivial(args.amqp, args.queue, args.out, args.prefetch)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    trivial.start()
    waiter = asyncio.ensure_future(trivial.wait())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if waiter.done() and waiter.exception() is not None:
        print(f"trivial engine: {waiter.exception()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(None)))
