"""HL7v2 over MLLP through the engine: python-hl7's `mllp_send` in, hl7apy's MLLP server out.

Both peers are written by others; the engine runs as a subprocess on the real broker.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hl7apy.core import Message
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message

from adapters.mllp import frame
from mappings.hl7v2.ack import parse_ack
from mappings.profile import event_id
from tests.adt_factory import adt, patients
from tests.e2e.harness import (
    CAREBRIDGE,
    EngineProcess,
    Receiver,
    delete_queues,
    engine_config,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.integration
MLLP_SEND = Path(sys.executable).with_name("mllp_send")
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


class ReceivingSystem(AbstractHandler):  # type: ignore[misc]
    """hl7apy parses what arrives and answers with an ACK hl7apy builds."""

    received: list[str] = []

    def reply(self) -> str:
        incoming = parse_message(self.incoming_message, find_groups=False)
        self.received.append(self.incoming_message)
        ack = Message("ACK", version=incoming.msh.msh_12.value)
        ack.msh.msh_9 = f"ACK^{incoming.msh.msh_9.msh_9_2.value}^ACK"
        ack.msh.msh_10 = f"R{incoming.msh.msh_10.value}"[:20]
        ack.msa.msa_1 = "AA"
        ack.msa.msa_2 = incoming.msh.msh_10.value
        return f"\x0b{ack.to_er7()}\r\x1c\r"


@pytest.fixture
def receiving_system() -> Iterator[int]:
    ReceivingSystem.received = []
    handlers = {f"ADT^{t}^ADT_{t}": (ReceivingSystem,) for t in ("A01", "A02", "A03")}
    server = MLLPServer("127.0.0.1", 0, handlers, timeout=5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
async def engine(
    tmp_path: Path, receiving_system: int
) -> AsyncIterator[tuple[EngineProcess, Receiver, str, int]]:
    receiver = Receiver()
    await receiver.start()
    source, mllp_port, http_port = f"mllp-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    extra = f"""
  - {{name: pas-out, type: mllp, host: 127.0.0.1, port: {receiving_system}, timeout: 5s,
     receiving_application: RECEIVER, receiving_facility: RX1}}
"""
    config = engine_config(tmp_path, [source], receiver.url, http_port=http_port)
    text = config.read_text().replace(
        f"  - {{name: {source}, care_setting: mental_health}}",
        f"  - {{name: {source}, care_setting: mental_health, mllp: {{port: {mllp_port}}}}}",
    )  # fmt: skip
    text = text.replace("routes:", extra.rstrip() + "\nroutes:").replace(
        "to: [receiver]", "to: [receiver, pas-out]"
    )
    config.write_text(text)
    proc = EngineProcess(config, http_port, tmp_path / "engine.log")
    await proc.start()
    yield proc, receiver, source, mllp_port
    await proc.terminate()
    await receiver.stop()
    delete_queues([f"carebridge.inbound.{source}"])


async def mllp_send(port: int, path: Path) -> list[bytes]:
    done = await asyncio.create_subprocess_exec(
        str(MLLP_SEND), "-p", str(port), "-f", str(path), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(done.communicate(), timeout=60)
    assert done.returncode == 0, err
    return [part for part in out.split(b"\x1c") if b"MSA" in part]


async def test_mllp_in_and_out_with_peers_written_by_others(
    engine: tuple[EngineProcess, Receiver, str, int], tmp_path: Path
) -> None:
    proc, receiver, source, port = engine
    [patient] = patients(1, run="M")
    discharge = adt("A03", patient, "MLLP-1", NOW)
    batch = tmp_path / "batch.hl7"
    rejected = b"MSH|^~\\&|EPR|RXT|CB|NHS|20260701||ADT^A17^ADT_A17|MLLP-BAD|P|2.4\rEVN|A17\r"
    # The same discharge twice (a sender retry), a content error, then a second message.
    batch.write_bytes(b"".join(frame(m) for m in (discharge, discharge, rejected,
                                                  adt("A01", patient, "MLLP-2", NOW))))  # fmt: skip
    answers = [parse_ack(a) for a in await mllp_send(port, batch)]
    assert [(a.code, a.control_id) for a in answers] == [
        ("AA", "MLLP-1"), ("AA", "MLLP-1"), ("AE", "MLLP-BAD"), ("AA", "MLLP-2")]  # fmt: skip
    assert "A17" in (answers[2].text or "")

    wanted = {f"{event_id(source, c)}.receiver" for c in ("MLLP-1", "MLLP-2")}
    await wait_until(lambda: set(receiver.applied) >= wanted, what="webhook deliveries")
    await wait_until(lambda: len(ReceivingSystem.received) >= 2, what="MLLP deliveries")
    assert receiver.repeats == 0, "the repeated message is delivered once"
    assert len(ReceivingSystem.received) == 2
    sent = parse_message(ReceivingSystem.received[0].replace("\n", "\r"), find_groups=False)
    assert sent.msh.msh_9.value == "ADT^A03^ADT_A03"
    assert sent.msh.msh_12.value == "2.4"
    assert patient.nhs_number in sent.pid.pid_3.value
    assert any('"intake.rejected"' in line for line in proc.log_lines())


async def test_carebridge_send_over_mllp_prints_each_ack(
    engine: tuple[EngineProcess, Receiver, str, int], tmp_path: Path
) -> None:
    _proc, receiver, source, port = engine
    [patient] = patients(1, run="N")
    message = tmp_path / "a01.hl7"
    message.write_bytes(adt("A01", patient, "SEND-1", NOW))
    done = await asyncio.create_subprocess_exec(
        str(CAREBRIDGE), "send", str(message), "--mllp", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(done.communicate(), timeout=60)
    assert done.returncode == 0, err
    assert b"MSA|AA|SEND-1" in out
    key = f"{event_id(source, 'SEND-1')}.receiver"
    await wait_until(lambda: key in receiver.applied, what="the event delivered")


async def test_enhanced_mode_gets_commit_acknowledgements(
    engine: tuple[EngineProcess, Receiver, str, int], tmp_path: Path
) -> None:
    _proc, _receiver, _source, port = engine
    [patient] = patients(1, run="E")
    enhanced = adt("A01", patient, "ENH-1", NOW).replace(b"|||||GBR|", b"|||AL|NE|GBR|", 1)
    batch = tmp_path / "enhanced.hl7"
    batch.write_bytes(frame(enhanced))
    [answer] = [parse_ack(a) for a in await mllp_send(port, batch)]
    assert (answer.code, answer.control_id) == ("CA", "ENH-1")
