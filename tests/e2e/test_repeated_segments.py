"""A message with a segment twice where one is allowed, through the real engine (issue 13
point 4): over MLLP the sender gets AE with an ERR naming the segment; over RabbitMQ the message
is kept in the message log as rejected with that reason. Nothing is delivered for either."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.mllp import frame
from mappings.hl7v2.ack import parse_ack
from mappings.profile import event_id
from tests.adt_factory import adt, patients
from tests.e2e.harness import (
    EngineProcess,
    Receiver,
    delete_queues,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def doubled(body: bytes, segment: bytes) -> bytes:
    """The message with its `segment` line written twice."""
    lines = body.rstrip(b"\r").split(b"\r")
    line = next(x for x in lines if x.startswith(segment + b"|"))
    index = lines.index(line)
    return b"\r".join([*lines[: index + 1], line, *lines[index + 1 :]]) + b"\r"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[EngineProcess, Receiver, str, int]]:
    receiver = Receiver()
    await receiver.start()
    source, mllp_port, http_port = f"dup-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    config = engine_config(tmp_path, [source], receiver.url, http_port=http_port)
    config.write_text(
        config.read_text().replace(
            f"  - {{name: {source}, care_setting: mental_health}}",
            f"  - {{name: {source}, care_setting: mental_health, mllp: {{port: {mllp_port}}}}}",
        )
    )
    proc = EngineProcess(config, http_port, tmp_path / "engine.log")
    await proc.start()
    yield proc, receiver, source, mllp_port
    await proc.terminate()
    await receiver.stop()
    delete_queues([f"carebridge.inbound.{source}"])


def rejected_rows(database: Path) -> dict[str, tuple[str, str]]:
    """Reason and location of each rejected message, by its MSH-10 (from the kept payload)."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT payload, reason, error_location FROM messages WHERE status = 'rejected'"
        ).fetchall()
    return {
        bytes(payload).split(b"|")[9].decode(): (str(reason), str(location))
        for payload, reason, location in rows
    }


async def test_a_repeated_segment_is_ae_over_mllp_and_rejected_over_rabbitmq(
    engine: tuple[EngineProcess, Receiver, str, int], tmp_path: Path
) -> None:
    proc, receiver, source, port = engine
    [patient] = patients(1, run="D")
    two_pv1 = doubled(adt("A03", patient, "DUP-MLLP", NOW), b"PV1")
    two_pid = doubled(adt("A03", patient, "DUP-AMQP", NOW), b"PID")
    good = adt("A01", patient, "DUP-GOOD", NOW)

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(two_pv1))
    await writer.drain()
    raw = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout=30)
    writer.close()
    answer = parse_ack(raw.strip(b"\x0b\x1c\r"))
    assert (answer.code, answer.control_id) == ("AE", "DUP-MLLP")
    assert "PV1 segment repeated" in (answer.text or "")
    err = next(s for s in raw.split(b"\r") if s.startswith(b"ERR|"))
    assert b"PV1" in err

    await publish_all(source, [two_pid, good])
    await wait_until(
        lambda: f"{event_id(source, 'DUP-GOOD')}.receiver" in receiver.applied,
        what="the good message delivered after the bad ones",
    )
    await wait_until(lambda: len(rejected_rows(tmp_path / "carebridge.db")) >= 2, what="log")
    rows = rejected_rows(tmp_path / "carebridge.db")
    assert "PV1 segment repeated" in rows["DUP-MLLP"][0]
    assert rows["DUP-MLLP"][1] == "PV1"
    assert "PID segment repeated" in rows["DUP-AMQP"][0]
    assert rows["DUP-AMQP"][1] == "PID"
    assert not {f"{event_id(source, c)}.receiver" for c in ("DUP-MLLP", "DUP-AMQP")} & set(
        receiver.applied
    )
    assert any('"intake.rejected"' in line for line in proc.log_lines())
