"""A discharge travels from RabbitMQ through the engine (a real subprocess) to a webhook.

The pass criterion of the foundation: every routed event arrives; the receiver applies each
idempotency key once (and sees no repeat at all when nothing failed); each patient's events
arrive in the order they happened; after a SIGKILL in the middle of a run, still nothing is lost.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mappings.profile import event_id
from tests.adt_factory import CANARY_FAMILY, CANARY_GIVEN, patients, stream
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.harness import (
    EngineProcess,
    Receipt,
    Receiver,
    delete_queues,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)

pytestmark = pytest.mark.integration

PATIENTS, PER_PATIENT = 50, 10


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def source() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, source: str, receiver: Receiver
) -> AsyncIterator[EngineProcess]:
    """The engine as a subprocess, on a fresh SQLite file or a fresh PostgreSQL database."""
    database = await create_pg_database() if request.param == "postgresql" else None
    port = free_port()
    config = engine_config(tmp_path, [source], receiver.url, http_port=port,
                           store_url=pg_url(database) if database else None)  # fmt: skip
    proc = EngineProcess(config, port, tmp_path / "engine.log")
    yield proc
    if proc.process is not None and proc.process.returncode is None:
        await proc.terminate()
    delete_queues([f"carebridge.inbound.{source}"])
    if database:
        await drop_pg_database(database)


def assert_per_patient_order(receipts: list[Receipt]) -> None:
    """Control ids are `<run>-<patient>-<step>`: per patient, steps must never go backwards."""
    by_patient: dict[str, list[str]] = defaultdict(list)
    for receipt in receipts:
        by_patient[receipt.event["patient"]["identifiers"][0]["value"]].append(
            receipt.event["source"]["message_id"]
        )
    for nhs_number, control_ids in by_patient.items():
        assert control_ids == sorted(control_ids), f"out of order for patient {nhs_number}"


def assert_clean_logs(engine: EngineProcess) -> None:
    for line in engine.log_lines():
        record = json.loads(line)  # every line is structured JSON
        assert "exception" not in record, record
        assert CANARY_FAMILY not in line
        assert CANARY_GIVEN not in line


async def test_discharges_flow_in_order_and_survive_sigkill(
    engine: EngineProcess, receiver: Receiver, source: str
) -> None:
    people = patients(PATIENTS)
    first = stream(people, PER_PATIENT, run="R")
    await engine.start()
    await publish_all(source, [body for _, _, body in first])
    expected = {event_id(source, cid) for _, cid, _ in first}
    await wait_until(lambda: len(receiver.applied) >= len(expected), what="first run delivered")

    assert {r.event["event_id"] for r in receiver.applied_order()} == expected
    assert receiver.repeats == 0, "no repeat at all when nothing failed"
    assert_per_patient_order(receiver.applied_order())
    kinds = {r.event["kind"] for r in receiver.applied_order()}
    assert kinds == {"admission", "transfer", "discharge"}

    # Second run: SIGKILL the engine while it is busy, restart it, and lose nothing.
    second = stream(people, PER_PATIENT, run="S")
    await publish_all(source, [body for _, _, body in second])
    more = {event_id(source, cid) for _, cid, _ in second}
    await wait_until(lambda: len(receiver.applied) >= len(expected) + 50, what="second run busy")
    engine.kill()
    assert engine.process is not None
    await engine.process.wait()
    await engine.start()
    await wait_until(
        lambda: len(receiver.applied) >= len(expected | more), what="everything after restart"
    )
    assert {r.event["event_id"] for r in receiver.applied_order()} == expected | more
    assert_per_patient_order(receiver.applied_order())
    assert await engine.terminate() == 0
    assert_clean_logs(engine)


async def test_bad_input_is_rejected_kept_and_never_blocks_the_rest(
    engine: EngineProcess, receiver: Receiver, source: str
) -> None:
    people = patients(3, run="B")
    good = stream(people, 3, run="G")
    garbage = [
        f"not hl7 at all {CANARY_FAMILY}".encode(),
        b"MSH|^~\\&|X|Y|Z|W|20260101||ORU^R01|C1|P|2.4\rPID|1||"
        + CANARY_GIVEN.encode() + b"\r",
        b"",
    ]  # fmt: skip
    # A destination refusal (422) is permanent: that delivery is dead-lettered, others go on.
    refused = event_id(source, good[0][1])
    receiver.answer = lambda event: 422 if event["event_id"] == refused else 200
    await engine.start()
    await publish_all(source, [garbage[0], *[b for _, _, b in good], garbage[1], garbage[2]])
    wanted = {event_id(source, cid) for _, cid, _ in good} - {refused}
    await wait_until(lambda: set(receiver.applied) >= {f"{e}.receiver" for e in wanted})
    assert await engine.terminate() == 0
    lines = [json.loads(line) for line in engine.log_lines()]
    rejected = [r for r in lines if r["event"] == "intake.rejected"]
    assert len(rejected) == 3
    assert all(r["reason"] for r in rejected)
    assert any(r["event"] == "delivery.dead_lettered" for r in lines)
    settled = [i for i, r in enumerate(lines) if r["event"] == "engine.heap_settled"]
    assert len(settled) == 1
    assert lines[settled[0]]["frozen_objects"] > 10_000
    # before intake starts: its one full collection stalls no message in flight
    first_intake = next(i for i, r in enumerate(lines) if r["event"].startswith("intake."))
    started = next(i for i, r in enumerate(lines) if r["event"] == "engine.started")
    assert settled[0] < min(first_intake, started)
    assert_clean_logs(engine)


async def test_sigterm_exits_within_the_deadline_and_loses_nothing(
    engine: EngineProcess, receiver: Receiver, source: str
) -> None:
    engine.config.write_text(engine.config.read_text() + "shutdown: {deadline: 2s}\n")
    people = patients(20, run="T")
    messages = stream(people, 2, run="T")
    receiver.delay = 1.5  # every delivery is still in flight when SIGTERM comes
    await engine.start()
    await publish_all(source, [body for _, _, body in messages])
    await wait_until(lambda: receiver.started >= 5, what="deliveries in flight")
    assert engine.process is not None
    began = time.monotonic()
    assert await engine.terminate() == 0
    assert time.monotonic() - began < 2 + 5, "shutdown overran its deadline"
    receiver.delay = 0
    await engine.start()
    expected = {event_id(source, cid) for _, cid, _ in messages}
    await wait_until(lambda: {r.event["event_id"] for r in receiver.applied_order()} >= expected)
    assert_per_patient_order(receiver.applied_order())
    assert await engine.terminate() == 0
    assert_clean_logs(engine)
