"""Cancels reach exactly the destinations that had the original; late originals and merges.

Intake runs in-process against both real stores; the broker side is the in-memory double
(tests/memory_broker.py), held to the adapter's contract in tests/contract/test_broker.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.config import parse_config
from engine.intake import Intake
from engine.store import Store
from engine.store.schema import deliveries, events, follow_ups
from tests.adt_factory import Patient, adt, patients
from tests.e2e.harness import wait_until
from tests.memory_broker import MemoryBroker

pytestmark = pytest.mark.integration

CONFIG = parse_config(
    """
sources: [{name: mh, care_setting: mental_health}]
destinations:
  - {name: team, type: webhook, url: "https://team.example/x"}
  - {name: gp, type: webhook, url: "https://gp.example/x"}
routes:
  - {name: team, match: {kinds: [admission, transfer, discharge, cancel_admission,
                                 cancel_transfer, cancel_discharge, merge]}, to: [team]}
  - {name: gp, match: {kinds: [discharge]}, to: [gp]}
""",
    env={},
)
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


QUEUE = "carebridge.inbound.mh"


async def ingest(store: Store, *messages: bytes) -> None:
    """Each message in its own batch, in order, as a slow sender would deliver them."""
    broker = MemoryBroker([QUEUE])
    intake = Intake(store, CONFIG, await broker.subscribe([QUEUE]), {QUEUE: "mh"})
    task = asyncio.create_task(intake.run())
    try:
        for body in messages:
            broker.send(QUEUE, body)
            await wait_until(lambda: broker.depth(QUEUE) == 0, deadline=30)
    finally:
        intake.stop()
        await task
    assert broker.dead == [], "nothing here should be nacked"


async def ingest_batch(store: Store, *messages: bytes) -> None:
    """All the messages in one batch: they are all waiting when intake starts."""
    broker = MemoryBroker([QUEUE])
    deliveries = await broker.subscribe([QUEUE])
    for body in messages:
        broker.send(QUEUE, body)
    intake = Intake(store, CONFIG, deliveries, {QUEUE: "mh"})
    task = asyncio.create_task(intake.run())
    try:
        await wait_until(lambda: broker.depth(QUEUE) == 0)
    finally:
        intake.stop()
        await task
    assert broker.dead == [], "nothing here should be nacked"


async def routed(store: Store, control_id: str) -> dict[str, Any]:
    """The event of a message: its destinations, what it corrects, its warnings."""
    async with store.engine.connect() as conn:
        event = (await conn.execute(sa.select(events).where(
            events.c.event_id == _event_id(control_id)))).one()  # fmt: skip
        dests = [r.destination for r in await conn.execute(
            sa.select(deliveries.c.destination).where(
                deliveries.c.event_id == event.event_id).order_by(deliveries.c.id))]  # fmt: skip
    body = json.loads(event.body)
    return {"to": dests, "corrects": event.corrects, "warnings": body.get("warnings", []),
            "body_corrects": body.get("corrects_event_id")}  # fmt: skip


def _event_id(control_id: str) -> str:
    from mappings.profile import event_id

    return event_id("mh", control_id)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def test_cancelled_discharge_corrects_every_destination_that_had_it(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A01", p, "ADM", at(0)), adt("A03", p, "DIS", at(60)),
                 adt("A13", p, "CAN", at(90)))  # fmt: skip
    assert (await routed(store, "DIS"))["to"] == ["team", "gp"]
    cancel = await routed(store, "CAN")
    assert cancel["to"] == ["team", "gp"]
    assert cancel["corrects"] == cancel["body_corrects"] == _event_id("DIS")


async def test_cancelled_admission_corrects_only_where_the_admission_went(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A01", p, "ADM", at(0)), adt("A11", p, "CAN", at(5)))
    cancel = await routed(store, "CAN")
    assert cancel["to"] == ["team"]  # the GP never received the admission
    assert cancel["corrects"] == _event_id("ADM")


async def test_cancel_of_an_event_never_received_goes_nowhere(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A13", p, "CAN", at(0)))
    cancel = await routed(store, "CAN")
    assert cancel["to"] == []
    assert cancel["corrects"] is None
    assert "cancels an event that was never received: nothing to correct" in cancel["warnings"]


async def test_discharge_arriving_after_its_cancel_is_not_delivered(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A13", p, "CAN", at(90)), adt("A03", p, "DIS", at(60)))
    late = await routed(store, "DIS")
    assert late["to"] == []
    assert late["corrects"] == _event_id("CAN")
    assert (await routed(store, "CAN"))["corrects"] == _event_id("DIS")


async def test_a_newer_discharge_after_an_unmatched_cancel_is_delivered(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A13", p, "CAN", at(0)), adt("A03", p, "DIS", at(60)))
    assert (await routed(store, "DIS"))["to"] == ["team", "gp"]


async def test_cancel_in_the_same_batch_as_its_original(store: Store) -> None:
    [p] = patients(1)
    await ingest_batch(store, adt("A03", p, "DIS", at(0)), adt("A13", p, "CAN", at(5)))
    assert (await routed(store, "CAN"))["to"] == ["team", "gp"]


def merge_message(survivor: Patient, retired_mrn: str, control_id: str) -> bytes:
    ts = at(120).strftime("%Y%m%d%H%M%S")
    return (
        f"MSH|^~\\&|EPR|RXT|CB|NHS|{ts}||ADT^A40^ADT_A39|{control_id}|P|2.4\r"
        f"EVN|A40|{ts}||||{ts}\r"
        f"PID|1||{survivor.nhs_number}^^^NHS^NH~{survivor.mrn}^^^RXT^MR||{survivor.family}^"
        f"{survivor.given}||19800101|2\r"
        f"MRG|{retired_mrn}^^^RXT^MR\r"
    ).encode()


async def test_merge_rekeys_history_and_pending_deliveries_to_the_survivor(
    store: Store,
) -> None:
    [survivor] = patients(1)
    unknown = Patient("", "RXT0999", survivor.family, survivor.given)
    local_only = adt("A01", unknown, "OLD", at(0)).replace(b"^^^NHS^NH~", b"")
    await ingest(store, local_only, merge_message(survivor, "RXT0999", "MRG"))
    async with store.engine.connect() as conn:
        keys = {r.patient_key for r in await conn.execute(sa.select(deliveries.c.patient_key))}
        old = (await conn.execute(sa.select(events.c.patient_key).where(
            events.c.event_id == _event_id("OLD")))).scalar_one()  # fmt: skip
    assert old == f"nhs:{survivor.nhs_number}"
    assert keys == {f"nhs:{survivor.nhs_number}"}


async def test_a_changed_discharge_replaces_the_standing_one(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A03", p, "DIS", at(60)), adt("A03", p, "DIS2", at(75)))
    changed = await routed(store, "DIS2")
    assert changed["body_corrects"] == _event_id("DIS")
    assert changed["to"] == ["team", "gp"]
    async with store.engine.connect() as conn:
        clocks = dict(
            (await conn.execute(sa.select(follow_ups.c.event_id, follow_ups.c.status))).all()
        )
    assert clocks == {_event_id("DIS"): "withdrawn", _event_id("DIS2"): "open"}


async def test_a_discharge_after_a_cancelled_one_is_a_new_discharge(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A03", p, "DIS", at(60)), adt("A13", p, "CAN", at(70)),
                 adt("A03", p, "DIS2", at(90)))  # fmt: skip
    assert (await routed(store, "DIS2"))["body_corrects"] is None


async def test_a_discharge_after_a_cancel_of_the_stored_one_in_its_batch_is_new(
    store: Store,
) -> None:
    [p] = patients(1)
    await ingest(store, adt("A03", p, "DIS", at(60)))
    await ingest_batch(store, adt("A13", p, "CAN", at(70)), adt("A03", p, "DIS2", at(90)))
    assert (await routed(store, "CAN"))["corrects"] == _event_id("DIS")
    newer = await routed(store, "DIS2")
    assert newer["body_corrects"] is None
    assert newer["to"] == ["team", "gp"]
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(follow_ups.c.event_id, follow_ups.c.status, follow_ups.c.withdrawn_by)
        )
        clocks = {r.event_id: (r.status, r.withdrawn_by) for r in rows}
    assert clocks == {
        _event_id("DIS"): ("withdrawn", _event_id("CAN")),
        _event_id("DIS2"): ("open", None),
    }


async def test_a_newer_discharge_in_the_same_batch_as_an_unmatched_cancel_is_delivered(
    store: Store,
) -> None:
    [p] = patients(1)
    await ingest_batch(store, adt("A13", p, "CAN", at(0)), adt("A03", p, "DIS", at(60)))
    assert (await routed(store, "DIS"))["to"] == ["team", "gp"]


async def test_a_discharge_superseded_by_its_cancel_starts_no_follow_up(store: Store) -> None:
    [p] = patients(1)
    await ingest(store, adt("A13", p, "CAN", at(90)), adt("A03", p, "DIS", at(60)))
    async with store.engine.connect() as conn:
        clocks = (await conn.execute(sa.select(follow_ups.c.event_id))).all()
    assert clocks == []
