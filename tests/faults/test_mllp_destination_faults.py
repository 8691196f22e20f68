"""An MLLP destination misbehaves under a steady stream: for a while it never ACKs (half the
messages applied before it falls silent, half not), then it ACKs with the wrong MSA-2 (the
control id of the message before), then it recovers. The receiving system is built on
`adapters.mllp.MllpListener` and applies each message once by MSH-10. Silence and a wrong MSA-2
are transient by default: every confirmed event is applied once, in per-patient order, nothing
is dead-lettered, and the engine catches up within 30 s."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pytest

from adapters.mllp import MllpListener, PeerInfo
from engine.delivery.mllp import mllp_control_id
from mappings.hl7v2.ack import build_ack
from mappings.profile import event_id
from tests.adt_factory import patients, stream
from tests.e2e.harness import Receipt, wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import SteadySender, TimedReceiver, Traffic, Window, new_source, verify
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration

DESTINATION = "mllp"
ENGINE_TIMEOUT = 1.0
"""The engine's MLLP timeout (connect, send and ACK) in this case's config."""

SILENCE = 4.0
"""Seconds the destination stays silent; as long again it then ACKs with the wrong MSA-2."""
Mode = Literal["ok", "silent", "wrong"]


@dataclass
class MllpReceivingSystem:
    """A receiving system on `MllpListener`: applies each MSH-10 once (into the shared
    `TimedReceiver`, so `verify()` judges it like a webhook receiver) and answers as `mode`
    says. `expected` maps each MSH-10 the engine may send to (idempotency key, source control
    id, NHS number): anything else is a phantom and fails the case."""

    receiver: TimedReceiver
    expected: dict[str, tuple[str, str, str]]
    mode: Mode = "ok"
    listener: MllpListener | None = None
    received: int = 0
    silent_applied: int = 0
    silent_unapplied: int = 0
    wrong_acks: int = 0
    unknown: list[str] = field(default_factory=list)
    _last: str = ""
    _previous: str = ""
    _silent: dict[str, bool] = field(default_factory=dict)

    async def start(self) -> int:
        self.listener = MllpListener("127.0.0.1", 0, handle=self._handle, idle_timeout=60.0)
        await self.listener.start()
        return self.listener.port

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.close(grace=1.0)

    def _apply(self, control_id: str, message: bytes) -> None:
        key, source_cid, nhs = self.expected[control_id]
        segments = {s.split("|", 1)[0]: s.split("|") for s in message.decode().split("\r") if s}
        pid3 = segments["PID"][3]
        assert f"{nhs}^^^NHS^NH" in pid3.split("~"), f"{control_id}: PID-3 {pid3!r}"
        event = {"event_id": key.rsplit(".", 1)[0], "patient": {"identifiers": [{"value": nhs}]},
                 "source": {"message_id": source_cid}}  # fmt: skip
        receipt = Receipt(key, event)
        self.receiver.receipts.append(receipt)
        if key in self.receiver.applied:
            self.receiver.repeats += 1
            return
        self.receiver.applied[key] = receipt
        self.receiver.applied_at[key] = time.monotonic()

    async def _handle(self, message: bytes, _peer: PeerInfo) -> bytes:
        self.received += 1
        msh = message.split(b"\r", 1)[0].decode().split("|")
        control_id = msh[9]
        if control_id not in self.expected:
            self.unknown.append(control_id)
            return b""
        if control_id != self._last:  # a new message, not a resend of the last one
            self._previous, self._last = self._last, control_id
        now = datetime.now(UTC)
        mode = self.mode
        if mode == "silent":
            # Alternately (per message, a resend decides as before): commit then hang, so the
            # ACK is lost, or hang before committing.
            commits = self._silent.setdefault(control_id, len(self._silent) % 2 == 0)
            if commits:
                self._apply(control_id, message)
                self.silent_applied += 1
            else:
                self.silent_unapplied += 1
            await asyncio.sleep(ENGINE_TIMEOUT * 1.5)  # a late ACK, on a connection long gone
            return build_ack(message, "AA", now=now, control_id=f"A{control_id}")
        self._apply(control_id, message)
        ack = build_ack(message, "AA", now=now, control_id=f"A{control_id}")
        previous = self._previous
        if mode == "wrong" and previous:
            # Out of step: the ACK names the message before (MSA-2), not this one.
            self.wrong_acks += 1
            ack = ack.replace(f"MSA|AA|{control_id}".encode(), f"MSA|AA|{previous}".encode())
            assert f"MSA|AA|{previous}".encode() in ack
        return ack


def _expected(source: str, traffic: Traffic) -> dict[str, tuple[str, str, str]]:
    out: dict[str, tuple[str, str, str]] = {}
    for patient, cid, _ in traffic:
        key = f"{event_id(source, cid)}.{DESTINATION}"
        out[mllp_control_id(key)] = (key, cid, patient.nhs_number)
    return out


async def test_mllp_silence_then_wrong_msa2_then_recovery(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    source = new_source("mllp")
    traffic = stream(patients(30), 14, run="M")
    system = MllpReceivingSystem(receiver, _expected(source, traffic))
    port = await system.start()
    destination = (
        f"  - {{name: {DESTINATION}, type: mllp, host: 127.0.0.1, port: {port}, "
        f"timeout: {ENGINE_TIMEOUT:g}s}}"
    )
    sender = SteadySender(rabbit.url, source, traffic, gap=0.8)
    task: asyncio.Task[None] | None = None
    try:
        engine = await make_engine([source], amqp_url=rabbit.url, destinations_extra=destination,
                                   route_to=f"[{DESTINATION}]")  # fmt: skip
        task = asyncio.create_task(sender.run())
        await wait_until(lambda: len(receiver.applied) >= 40, deadline=60, what="stream flowing")
        window = Window()
        system.mode = "silent"
        await asyncio.sleep(SILENCE)
        system.mode = "wrong"
        await asyncio.sleep(SILENCE)
        system.mode = "ok"
        window.close()
        await asyncio.wait_for(task, 150)
        facts = await verify(
            f"mllp destination silent {SILENCE:g}s, then wrong MSA-2 {SILENCE:g}s", engine,
            receiver, [], window,
            store_url=f"sqlite+aiosqlite:///{engine.config.parent / 'carebridge.db'}",
            other_confirmed=sender.confirmed_keys(DESTINATION),
            other_sent=sender.all_keys(DESTINATION),
            silent_applied=system.silent_applied, silent_unapplied=system.silent_unapplied,
            wrong_acks=system.wrong_acks, frames_received=system.received,
        )  # fmt: skip
        assert not system.unknown, f"messages nobody sent: {system.unknown[:5]}"
        assert system.silent_applied > 0, facts
        assert system.silent_unapplied > 0, facts
        assert system.wrong_acks > 0, facts
        # every message applied during the silence lost its ACK and came back as a repeat
        assert facts["repeats_dropped_by_receiver"] >= system.silent_applied
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await system.stop()
