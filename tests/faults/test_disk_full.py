"""The SQLite store's disk fills up under a steady stream (a 20 MB tmpfs of its own, filled by a
file): intake stops acknowledging (AMQP messages stay queued, MLLP senders get AR, FHIR senders
503), /readyz turns not ready, nothing crashes; when the file is deleted the engine resumes with
nothing lost. Needs root (mount)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

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
    store_rows,
    verify,
)
from tests.faults.rabbit_node import RabbitNode
from tests.faults.test_alarms import TOKEN, _fhir_status, _mllp_code

pytestmark = pytest.mark.integration

MIN_FREE = 4 * 1024 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MB tmpfs for the store alone; unmounted at teardown (lazily: after the engine)."""
    folder = tmp_path / "store-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(folder)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem has no space left."""
    filler = folder / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


async def readyz(port: int) -> tuple[int, dict[str, bool]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, (await response.json())["checks"]


async def test_a_full_disk_stops_intake_and_the_engine_resumes_when_space_returns(
    disk: Path, rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    source, mllp_port, fhir_port = new_source("full"), free_port(), free_port()
    store_url = f"sqlite+aiosqlite:///{disk / 'carebridge.db'}"
    engine = await make_engine(
        [source], amqp_url=rabbit.url, env={"CB_FAULT_TOKEN": TOKEN}, store_url=store_url,
        store_extra=f", min_free_bytes: {MIN_FREE}",
        source_extra=f", mllp: {{port: {mllp_port}}}, fhir: {{tokens: ['${{CB_FAULT_TOKEN}}']}}",
        extra=f"fhir_http: {{host: 127.0.0.1, port: {fhir_port}}}",
    )  # fmt: skip
    sender = SteadySender(rabbit.url, source, stream(patients(25), 10, run="D"), gap=0.8)
    mllp_people = [Patient(nhs, f"M{i:05d}", "ZZCANARYFAMILYM", "ZZCANARYGIVENM")
                   for i, nhs in enumerate(synthetic_nhs_numbers(40, start=60000))]  # fmt: skip
    mllp_acked: dict[str, float] = {}
    mllp_sent: set[str] = set()
    codes: list[str] = []

    async def mllp_once() -> str:
        control_id = f"M-{len(codes):04d}-0000"
        message = adt("A01", mllp_people[len(codes) % len(mllp_people)], control_id,
                      datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # fmt: skip
        key = f"{event_id(source, control_id)}.receiver"
        mllp_sent.add(key)
        code = await _mllp_code(mllp_port, message)
        codes.append(code)
        if code == "AA":
            mllp_acked[key] = time.monotonic()
        return code

    messages = "SELECT count(*) FROM messages"
    traffic = asyncio.create_task(sender.run(deadline=200))
    try:
        await wait_until(lambda: len(receiver.applied) >= 40, deadline=60, what="stream flowing")
        assert await mllp_once() == "AA"
        assert (await readyz(engine.http_port))[0] == 200
        window = Window()
        filler = await in_thread(fill, disk)
        end = time.monotonic() + 20
        while await mllp_once() != "AR":
            assert time.monotonic() < end, f"MLLP never refused with the disk full: {codes}"
            await asyncio.sleep(0.2)
        status, body, retry_after = await _fhir_status(fhir_port, source)
        assert (status, bool(retry_after)) == (503, True), (status, body)
        ready, checks = await readyz(engine.http_port)
        assert (ready, checks["store_has_room"]) == (503, False), checks
        # AMQP: the sender's messages are confirmed by the broker and stay queued, unacked
        stored = (await store_rows(store_url, messages))[0][0]
        confirmed = len(sender.confirmed_at)
        await asyncio.sleep(5.0)
        assert len(sender.confirmed_at) > confirmed, "the AMQP sender kept publishing"
        assert (await store_rows(store_url, messages))[0][0] == stored, "intake took messages"
        assert engine.process is not None
        assert engine.process.returncode is None
        filler.unlink()
        window.close()
        returned = time.monotonic()
        while await mllp_once() != "AA":
            assert time.monotonic() - returned < RECOVERY_BOUND, f"MLLP not back: {codes}"
            await asyncio.sleep(0.2)
        mllp_back = time.monotonic() - returned
        while (fhir := await _fhir_status(fhir_port, source))[0] != 202:
            assert time.monotonic() - returned < RECOVERY_BOUND, f"FHIR not back: {fhir}"
            await asyncio.sleep(0.2)
        found = re.search(r"care event ([^\"\s]+)", fhir[1])
        assert found, fhir[1]
        mllp_acked[f"{found.group(1)}.receiver"] = time.monotonic()
        assert (await readyz(engine.http_port))[0] == 200
        await asyncio.wait_for(traffic, 200)
        full_lines = [json.loads(line) for line in engine.log_lines()
                      if '"intake.store_unavailable"' in line]  # fmt: skip
        await verify(
            "SQLite disk full (20 MB tmpfs), then space returns", engine, receiver, [sender],
            window, store_url=store_url, other_confirmed=mllp_acked, other_sent=mllp_sent,
            mllp_answers=" ".join(codes), mllp_back_s=round(mllp_back, 2),
            intake_waits_logged=len(full_lines),
            intake_wait_errors=sorted({str(r.get("error")) for r in full_lines}),
        )  # fmt: skip
        assert full_lines, "intake said in its log that it waited for the store"
    finally:
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)
