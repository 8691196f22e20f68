"""MESH misbehaving between the engine and NHS Digital's mesh-sandbox (behind the fault suite's
TCP proxy): down, slow, connections reset, and an answer lost after the upload. Nothing is
lost; a discharge that reaches the GP more than once is the same message every time (the same
MESH local id and ITK3 MessageHeader id), which the GP system recognises as a repeat. Run
under ``flock /tmp/cb-faults.lock``."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import Config
from tests.adt_factory import adt, patients
from tests.faults.tcp_proxy import TcpProxy
from tests.mesh.gp import fhir_value
from tests.mesh.kit import Arrived, World, config, gp_read, wait_until_async, world
from tests.mesh.sandbox import GP_MAILBOXES, Sandbox, free_port, write_data

pytestmark = pytest.mark.integration
GP = GP_MAILBOXES["B12345"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = tmp_path_factory.mktemp("mesh-sandbox-faults")
    write_data(folder)
    running = Sandbox(folder, free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def proxy(sandbox: Sandbox) -> AsyncIterator[TcpProxy]:
    gp_read(sandbox, GP)  # each case starts with an empty GP inbox
    tcp = TcpProxy(sandbox.port)
    await tcp.start()
    yield tcp
    await tcp.close()


def discharges(count: int) -> tuple[list[str], list[bytes]]:
    """Admission and discharge of `count` new patients; the discharges' control ids."""
    run = uuid.uuid4().hex[:6].upper()
    now = datetime.now(UTC).replace(microsecond=0)
    ids, messages = [], []
    for i, patient in enumerate(patients(count, run=run)):
        messages += [adt("A01", patient, f"A-{run}-{i}", now - timedelta(days=2)),
                     adt("A03", patient, f"D-{run}-{i}", now)]  # fmt: skip
        ids.append(f"D-{run}-{i}")
    return ids, messages


def via(proxy: TcpProxy, timeout: str = "1s", extra: str = "") -> Config:
    return config(f"http://127.0.0.1:{proxy.port}", timeout=timeout, extra=extra)


async def all_delivered(w: World, ids: list[str], deadline: float = 120) -> None:
    async def done() -> bool:
        statuses = [(await w.delivery(i)).status for i in ids]
        return all(status == "delivered" for status in statuses)

    await wait_until_async(done, deadline)


async def all_tried(w: World, ids: list[str], times: int = 2) -> None:
    async def tried() -> bool:
        tries = [(await w.delivery(i)).attempts for i in ids]
        return all(n >= times for n in tries)

    await wait_until_async(tried, 120)


async def arrived_once_or_repeated(
    sandbox: Sandbox, w: World, ids: list[str]
) -> dict[str, list[Arrived]]:
    """Every discharge is in the GP's inbox; each copy of one is the same message."""
    copies: dict[str, list[Arrived]] = defaultdict(list)
    for message in gp_read(sandbox, GP):
        assert message.local_id is not None
        copies[message.local_id].append(message)
    for control_id in ids:
        key = (await w.delivery(control_id)).idempotency_key
        assert copies[key], f"{control_id} never reached the GP"
        headers = {fhir_value(c.xml, "entry/resource/MessageHeader/id") for c in copies[key]}
        assert len(headers) == 1, "a resend must be the same ITK3 message"
    return copies


async def test_mesh_down_then_back_loses_nothing(sandbox: Sandbox, proxy: TcpProxy,
                                                 tmp_path: Path) -> None:  # fmt: skip
    ids, messages = discharges(5)
    async with world(sandbox, tmp_path, via(proxy)) as w:
        proxy.blackhole()
        w.start_delivery()
        await w.ingest(*messages)
        await all_tried(w, ids)
        assert {(await w.delivery(i)).status for i in ids} == {"pending"}
        proxy.pass_through()
        await all_delivered(w, ids)
        await arrived_once_or_repeated(sandbox, w, ids)


async def test_an_answer_lost_after_the_upload_is_resent_with_the_same_local_id(
    sandbox: Sandbox, proxy: TcpProxy, tmp_path: Path
) -> None:
    ids, messages = discharges(1)
    table = f"\n    mailboxes: {{B12345: {GP}}}"  # no lookup: the upload is the only request
    async with world(sandbox, tmp_path, via(proxy, extra=table)) as w:
        proxy.drop_answers()
        w.start_delivery()
        await w.ingest(*messages)
        await all_tried(w, ids, times=1)
        row = await w.delivery(ids[0])
        assert row.status == "pending"
        assert "may have arrived" in row.last_error
        proxy.pass_through()
        await all_delivered(w, ids)
        copies = await arrived_once_or_repeated(sandbox, w, ids)
        [resent] = copies.values()
        assert len(resent) >= 2, "the lost upload arrived, and so did its resend"
        assert {c.local_id for c in resent} == {row.idempotency_key}
        mesh = await w.mesh_message(row.id)
        assert mesh.message_id in {c.message_id for c in resent}


async def test_slow_mesh_is_retried_until_it_answers(sandbox: Sandbox, proxy: TcpProxy,
                                                     tmp_path: Path) -> None:  # fmt: skip
    ids, messages = discharges(2)
    async with world(sandbox, tmp_path, via(proxy)) as w:
        proxy.latency = 2.0
        w.start_delivery()
        await w.ingest(*messages)
        await all_tried(w, ids, times=1)
        proxy.latency = 0.0
        await all_delivered(w, ids)
        await arrived_once_or_repeated(sandbox, w, ids)


async def test_connections_reset_mid_stream_lose_nothing(sandbox: Sandbox, proxy: TcpProxy,
                                                         tmp_path: Path) -> None:  # fmt: skip
    ids, messages = discharges(8)
    async with world(sandbox, tmp_path, via(proxy, "3s")) as w:
        w.start_delivery()
        ingest = asyncio.create_task(w.ingest(*messages))
        for _ in range(10):
            await asyncio.sleep(0.3)
            proxy.reset()
        await ingest
        await all_delivered(w, ids)
        await arrived_once_or_repeated(sandbox, w, ids)
