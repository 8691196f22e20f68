"""`carebridge send`: hand files to a running engine, over RabbitMQ or MLLP, as a sender would.

Not part of the engine's own path: a tool for integration teams (and the tests) that publishes
each file confirmed, or sends it over MLLP and prints the ACK it gets.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from adapters.errors import BrokerUnavailable, PublishReturned, TransportError
from adapters.mllp import MllpClient
from adapters.rabbitmq import INBOUND_EXCHANGE, AmqpSettings, Broker
from mappings.errors import MappingError
from mappings.hl7v2.ack import parse_ack


async def send_files(files: Sequence[Path], source: str, amqp_url: str) -> int:
    """`carebridge send`: publish each file to a source's inbound queue, confirmed.

    Exit 0 when every file was confirmed; 1 when any was refused (no queue for that source: is
    an engine running with it configured?) or unreadable; the broker being down is also 1.
    """
    failures = 0
    publisher = Broker(AmqpSettings(url=amqp_url, connection_name="carebridge-send"))
    try:
        await publisher.start(timeout=5)
    except BrokerUnavailable as exc:
        print(f"carebridge: cannot reach RabbitMQ: {exc}", file=sys.stderr)
        return 1
    try:
        for path in files:
            try:
                body = path.read_bytes()
                await publisher.publish(
                    INBOUND_EXCHANGE,
                    source,
                    body,
                    headers={"source": source, "filename": path.name[:200]},
                )
            except OSError as exc:
                failures += 1
                print(f"carebridge: {path}: cannot read ({exc.strerror})", file=sys.stderr)
            except PublishReturned:
                failures += 1
                print(
                    f"carebridge: {path}: no inbound queue for source {source!r} "
                    "(is an engine running with that source?)",
                    file=sys.stderr,
                )
            except TransportError as exc:
                failures += 1
                print(f"carebridge: {path}: not accepted by RabbitMQ: {exc}", file=sys.stderr)
            else:
                print(f"{path}: published to {INBOUND_EXCHANGE} for source {source}")
    finally:
        await publisher.close()
    return 1 if failures else 0


async def send_files_mllp(files: Sequence[Path], host: str, port: int) -> int:
    """`carebridge send --mllp`: send each file over MLLP and print the ACK it gets.

    Exit 0 when every file was acknowledged AA (or CA); 1 otherwise.
    """
    failures = 0
    async with MllpClient(host, port, timeout=30.0) as link:
        for path in files:
            try:
                answer = await link.send(path.read_bytes())
            except OSError as exc:
                failures += 1
                print(f"carebridge: {path}: cannot read ({exc.strerror})", file=sys.stderr)
                continue
            except TransportError as exc:
                failures += 1
                print(f"carebridge: {path}: no acknowledgement: {exc}", file=sys.stderr)
                continue
            print(f"{path}:")
            print(answer.decode("utf-8", "replace").replace("\r", "\n").rstrip("\n"))
            try:
                accepted = parse_ack(answer).code in ("AA", "CA")
            except MappingError:
                accepted = False
            failures += not accepted
    return 1 if failures else 0
