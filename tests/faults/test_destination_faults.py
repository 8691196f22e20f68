"""The webhook destination misbehaves under a steady stream: 503 for everyone for a while,
then OK; requests time out after the
receiver committed them; some are committed and then lose their response (the receiver
applies, then never answers or drops the connection); some events are refused with 422. Every
confirmed event is applied once, in per-patient order; exactly the refused ones are dead
letters; the lost responses come back as repeats the idempotent receiver drops."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from mappings.profile import event_id
from tests.adt_factory import patients, stream
from tests.e2e.harness import wait_until
from tests.faults.conftest import MakeEngine
from tests.faults.kit import SteadySender, TimedReceiver, Window, new_source, verify
from tests.faults.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration

REFUSED_STEP = 3
"""Patients 0-4: their event of this step is refused with 422 (permanent)."""


def _patient(event: dict[str, Any]) -> int:
    return int(event["source"]["message_id"].split("-")[1])


async def test_webhook_503_timeouts_lost_responses_and_refusals(
    rabbit: RabbitNode, receiver: TimedReceiver, make_engine: MakeEngine
) -> None:
    source = new_source("dst")
    traffic = stream(patients(30), 8, run="D")
    refused = {f"{event_id(source, cid)}.receiver" for _, cid, _ in traffic
               if int(cid.split("-")[1]) < 5 and cid.endswith(f"-{REFUSED_STEP:04d}")}  # fmt: skip
    unavailable_until = 0.0
    seen: set[str] = set()
    lost: dict[str, str] = {}

    def answer(event: dict[str, Any]) -> int:
        key = f"{event['event_id']}.receiver"
        if key in refused:
            return 422
        if time.monotonic() < unavailable_until:
            return 503
        return 200

    async def after_apply(key: str, request: web.Request) -> None:
        if key in seen:
            return
        seen.add(key)
        index = _patient(receiver.applied[key].event)
        if 5 <= index < 10:  # committed, then never answers (past the 2 s timeout)
            lost[key] = "hang"
            await asyncio.sleep(3.0)
        elif 10 <= index < 15 and request.transport is not None:  # committed, connection cut
            lost[key] = "drop"
            request.transport.abort()

    receiver.answer = answer
    receiver.after_apply = after_apply

    engine = await make_engine([source], amqp_url=rabbit.url)
    sender = SteadySender(rabbit.url, source, traffic, gap=0.8)
    task = asyncio.create_task(sender.run())
    try:
        await wait_until(lambda: len(receiver.applied) >= 40, deadline=60, what="stream flowing")
        window = Window()
        unavailable_until = time.monotonic() + 5.0
        await asyncio.sleep(5.0)
        window.close()
        await asyncio.wait_for(task, 150)
        facts = await verify(
            "webhook 503 5s + timeouts + lost responses + 422", engine, receiver, [sender],
            window, store_url=f"sqlite+aiosqlite:///{engine.config.parent / 'carebridge.db'}",
            dead=refused,
        )  # fmt: skip
        facts["lost_responses"] = len(lost)
        assert not set(receiver.applied) & refused
        # every lost response was sent again under the same key and dropped as a repeat
        assert facts["repeats_dropped_by_receiver"] >= len(lost) > 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
