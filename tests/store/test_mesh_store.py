"""The MESH records on SQLite and the real PostgreSQL: an upload recorded before and after,
an inbox message kept once with what its acknowledgement does (a negative one dead-letters, a
positive business one acknowledges the follow-up), the alerts due, and retention of a delivery
that has MESH rows."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.store import Delivered, FollowUpRecord, Store
from engine.store.mesh import NO_MAILBOX, AckRecord, InboxRecord, MeshUpload
from engine.store.schema import follow_ups
from tests.store.test_store import LEASE, T0, record

pytestmark = pytest.mark.integration


async def delivered(store: Store, key: str) -> int:
    """A discharge with a follow-up clock, delivered to `gp`; its delivery id."""
    rec = record(key, patient=f"nhs:{key}", destinations=("gp",))
    assert rec.accepted is not None
    clock = FollowUpRecord("72h", "72h", T0, T0 + timedelta(hours=72))
    rec = dataclasses.replace(rec, accepted=dataclasses.replace(rec.accepted, follow_up=clock))
    await store.record_intake([rec])
    [claimed] = await store.claim_due(["gp"], limit=1, lease=LEASE, owner="w")
    await store.finish_delivery(claimed, [], Delivered(T0))
    return claimed.id


def upload(delivery_id: int, key: str, recipient: str = "X26GP0001") -> MeshUpload:
    return MeshUpload(delivery_id, "gp", f"ev-{key}.gp", f"hdr-{key}", "TOC_FHIR_MH_DISCH",
                      recipient, "B12345")  # fmt: skip


def inbox(message_id: str, ack: AckRecord | None) -> InboxRecord:
    return InboxRecord(message_id, "gp", T0 + timedelta(hours=1), "X26GP0001",
                       "TOC_FHIR_MH_DISCH_ACK", None, b"<Bundle/>", ack,
                       None if ack else "not an ITK3 response")  # fmt: skip


async def test_acknowledgements_are_matched_recorded_once_and_act(store: Store) -> None:
    good, bad = await delivered(store, "good"), await delivered(store, "bad")
    for delivery_id, key in ((good, "good"), (bad, "bad")):
        await store.mesh_uploading(upload(delivery_id, key))
        await store.mesh_uploaded(delivery_id, f"MESH-{key}", T0)
    positive = AckRecord("hdr-good", "business", "30001", True, "Patient known here")
    outcome = await store.record_mesh_inbox(inbox("in-1", positive), hold=True)
    assert (outcome.status, outcome.delivery_id, outcome.follow_up_acknowledged) == (
        "matched", good, True)  # fmt: skip
    again = await store.record_mesh_inbox(inbox("in-1", positive), hold=True)
    assert again.already_recorded
    negative = AckRecord("hdr-bad", "business", "30002", False, "Patient not known here")
    dead = await store.record_mesh_inbox(inbox("in-2", negative), hold=True)
    assert dead.dead_lettered
    unread = await store.record_mesh_inbox(inbox("in-3", None), hold=True)
    assert unread.status == "unreadable"
    assert await store.mesh_inbox_recorded("in-3")
    counts = await store.counts()
    assert counts["deliveries.dead"] == 1


async def test_alerts_due_and_claimed_once(store: Store) -> None:
    waiting, lost = await delivered(store, "wait"), await delivered(store, "lost")
    await store.mesh_uploading(upload(waiting, "wait"))
    await store.mesh_uploaded(waiting, "MESH-wait", T0)
    await store.mesh_uploading(upload(lost, "lost", recipient=NO_MAILBOX))
    due = await store.mesh_to_alert("gp", T0 + timedelta(hours=1))
    assert {(d.delivery_id, d.no_mailbox) for d in due} == {(waiting, False)}  # lost: delivered
    assert await store.claim_mesh_alert(waiting)
    assert not await store.claim_mesh_alert(waiting)
    assert await store.mesh_to_alert("gp", T0 + timedelta(hours=1)) == []


async def test_retention_prunes_a_delivery_with_mesh_rows(store: Store) -> None:
    delivery_id = await delivered(store, "old")
    await store.mesh_uploading(upload(delivery_id, "old"))
    ack = AckRecord("hdr-old", "infrastructure", "20013", True, "Success")
    await store.record_mesh_inbox(inbox("in-old", ack), hold=True)
    assert await store.prune(T0 + timedelta(days=1)) == 0  # its follow-up is still open
    business = AckRecord("hdr-old", "business", "30001", True, "Patient known here")
    await store.record_mesh_inbox(inbox("in-old-2", business), hold=True)

    async with store.writing() as conn:
        await conn.execute(sa.update(follow_ups).values(status="done"))
        await conn.commit()
    assert await store.prune(T0 + timedelta(days=1)) == 1


async def test_retention_prunes_matched_inbox_messages_only(store: Store) -> None:
    delivery_id = await delivered(store, "kept")
    await store.mesh_uploading(upload(delivery_id, "kept"))
    ack = AckRecord("hdr-kept", "infrastructure", "20013", True, "Success")
    await store.record_mesh_inbox(inbox("in-matched", ack), hold=True)
    await store.record_mesh_inbox(inbox("in-unreadable", None), hold=True)
    assert await store.prune_mesh_inbox(T0) == 0  # received after T0: too young
    assert await store.prune_mesh_inbox(T0 + timedelta(days=1)) == 1
    assert not await store.mesh_inbox_recorded("in-matched")
    assert await store.mesh_inbox_recorded("in-unreadable")
