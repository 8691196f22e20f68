"""Resource alarms on the private node (disk, memory) while a stream flows and MLLP and FHIR
senders keep trying: senders are refused cleanly (AMQP publish refused, MLLP AR, HTTP 503 with
Retry-After), nothing confirmed is lost, nothing crashes, and acceptance resumes once the alarm
clears."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from adapters.errors import TransportError
from adapters.mllp import MllpClient
from mappings.errors import MappingError
from mappings.hl7v2.ack import parse_ack
from mappings.profile import event_id
from tests.adt_factory import Patient, adt, patients, stream, synthetic_nhs_numbers
from tests.e2e.harness import free_port, wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import (
    RECOVERY_BOUND,
    SteadySender,
    TimedReceiver,
    Window,
    in_thread,
    new_source,
    verify,
)
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FHIR_MESSAGE = (REPO / "tests/fixtures/fhir/mh_discharge_message.json").read_bytes()
TOKEN = "fault-suite-token-" + "f" * 16


async def _mllp_code(port: int, message: bytes) -> str:
    try:
        async with MllpClient("127.0.0.1", port, timeout=5.0) as link:
            return parse_ack(await link.send(message)).code
    except (TransportError, MappingError) as exc:
        return type(exc).__name__


async def _fhir_status(port: int, source: str) -> tuple[int, str, str | None]:
    headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/fhir/{source}", data=FHIR_MESSAGE,
                     headers=headers) as response,
    ):  # fmt: skip
        return response.status, await response.text(), response.headers.get("Retry-After")


@pytest.mark.parametrize(
    ("alarm", "raise_args", "clear_args"),
    [
        ("disk", ("set_disk_free_limit", "1000000GB"), ("set_disk_free_limit", "1MB")),
        ("memory", ("set_vm_memory_high_watermark", "0.0000001"),
         ("set_vm_memory_high_watermark", "0.4")),
    ],
)  # fmt: skip
async def test_resource_alarm_refuses_senders_cleanly_and_resumes(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine,
    alarm: str, raise_args: tuple[str, ...], clear_args: tuple[str, ...],
) -> None:  # fmt: skip
    source, mllp_port, fhir_port = new_source("alarm"), free_port(), free_port()
    engine = await make_engine(
        [source], amqp_url=rabbit.url, env={"CB_FAULT_TOKEN": TOKEN},
        source_extra=f", mllp: {{port: {mllp_port}}}, fhir: {{tokens: ['${{CB_FAULT_TOKEN}}']}}",
        extra=f"fhir_http: {{host: 127.0.0.1, port: {fhir_port}}}",
    )  # fmt: skip
    sender = SteadySender(rabbit.url, source, stream(patients(25), 8, run="A"), gap=0.8)
    mllp_people = [Patient(nhs, f"M{i:05d}", "ZZCANARYFAMILYM", "ZZCANARYGIVENM")
                   for i, nhs in enumerate(synthetic_nhs_numbers(40, start=50000))]  # fmt: skip
    mllp_acked: dict[str, float] = {}
    mllp_sent: set[str] = set()  # an AR may still have reached the queue: may, not must, arrive
    codes: list[str] = []
    sent = 0

    async def mllp_once() -> str:
        nonlocal sent
        control_id = f"M-{sent:04d}-0000"
        when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        message = adt("A01", mllp_people[sent % len(mllp_people)], control_id, when)
        sent += 1
        mllp_sent.add(f"{event_id(source, control_id)}.receiver")
        code = await _mllp_code(mllp_port, message)
        codes.append(code)
        if code == "AA":
            mllp_acked[f"{event_id(source, control_id)}.receiver"] = time.monotonic()
        return code

    traffic = asyncio.create_task(sender.run())
    try:
        await wait_until(lambda: len(receiver.applied) >= 40, deadline=60, what="stream flowing")
        assert await mllp_once() == "AA"
        window = Window()
        await in_thread(rabbit.ctl, *raise_args)
        # the engine's publishing connection is blocked: MLLP gets AR, FHIR gets 503
        end = time.monotonic() + 20
        while await mllp_once() != "AR":
            assert time.monotonic() < end, f"MLLP never refused during the {alarm} alarm: {codes}"
            await asyncio.sleep(0.2)
        status, body, retry_after = await _fhir_status(fhir_port, source)
        assert status == 503, (status, body)
        assert retry_after
        refusals_before = sender.refusals
        await asyncio.sleep(4.0)
        assert sender.refusals > refusals_before, "the AMQP sender was refused too"
        assert engine.process is not None
        assert engine.process.returncode is None
        await in_thread(rabbit.ctl, *clear_args)
        window.close()
        cleared = time.monotonic()
        while await mllp_once() != "AA":
            assert time.monotonic() - cleared < RECOVERY_BOUND, f"MLLP not back: {codes}"
            await asyncio.sleep(0.2)
        mllp_back = time.monotonic() - cleared
        while (fhir := await _fhir_status(fhir_port, source))[0] != 202:
            assert time.monotonic() - cleared < RECOVERY_BOUND, f"FHIR not back: {fhir}"
            await asyncio.sleep(0.2)
        fhir_back = time.monotonic() - cleared
        found = re.search(r"care event ([^\"\s]+)", fhir[1])
        assert found, fhir[1]
        mllp_acked[f"{found.group(1)}.receiver"] = time.monotonic()
        await asyncio.wait_for(traffic, 150)
        await verify(
            f"{alarm} alarm", engine, receiver, [sender], window,
            store_url=f"sqlite+aiosqlite:///{engine.config.parent / 'carebridge.db'}",
            other_confirmed=mllp_acked, other_sent=mllp_sent, mllp_answers=" ".join(codes),
            mllp_back_s=round(mllp_back, 2), fhir_back_s=round(fhir_back, 2),
            sender_refusal_kinds=dict(sender.refusal_kinds),
        )  # fmt: skip
    finally:
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)
