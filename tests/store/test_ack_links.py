"""Acknowledgement link tokens in the store (SQLite and PostgreSQL): a token per action, kept
as its SHA-256, good once, refused when expired or for another notification or action; a use
records who and from where in the same transaction."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from engine.store import AcceptedEvent, FollowUpRecord, IntakeRecord, Store
from engine.store.ack_links import IssuedLink, LinkUse, issue_links, prune_links, use_link
from engine.store.schema import ack_links, follow_ups

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def discharged(store: Store, key: str = "d1") -> str:
    event_id = f"ev-{key}"
    await store.record_intake([IntakeRecord(
        source="mh-trust", payload=f"MSH|{key}".encode(), received_at=T0, format="hl7v2",
        message_key=key,
        accepted=AcceptedEvent(
            event_id=event_id, kind="discharge", care_setting="mental_health",
            patient_key="nhs:9434765919", occurred_at=T0, body="{}", destinations=(),
            follow_up=FollowUpRecord("72h", "72h", T0, T0 + timedelta(hours=72)),
        ),
    )])  # fmt: skip
    return event_id


def issued(token: str, event_id: str, action: str, days: int = 14) -> IssuedLink:
    return IssuedLink(digest(token), "clinicians", event_id, action,  # type: ignore[arg-type]
                      T0, T0 + timedelta(days=days))  # fmt: skip


def use(token: str, event_id: str, action: str, at: datetime = T0 + timedelta(hours=1),
        by: str = "Nurse Duty") -> LinkUse:  # fmt: skip
    return LinkUse(digest(token), "clinicians", event_id, action,  # type: ignore[arg-type]
                   by, "192.0.2.7", at)  # fmt: skip


async def follow_up(store: Store, event_id: str) -> dict[str, object]:
    async with store.reading() as conn:
        row = (await conn.execute(sa.select(follow_ups).where(
            follow_ups.c.event_id == event_id))).mappings().one()  # fmt: skip
    return dict(row)


async def test_each_token_works_once_for_its_own_action_and_records_who_and_where(
    store: Store,
) -> None:
    event_id = await discharged(store)
    await issue_links(store, [issued("ack-token", event_id, "ack"),
                              issued("done-token", event_id, "done")])  # fmt: skip
    assert await use_link(store, use("done-token", event_id, "ack")) == "unknown"  # wrong action
    assert await use_link(store, use("ack-token", "ev-other", "ack")) == "unknown"
    assert await use_link(store, use("never-issued", event_id, "ack")) == "unknown"
    assert await use_link(store, use("ack-token", event_id, "ack")) == "recorded"
    assert await use_link(store, use("ack-token", event_id, "ack")) == "used"
    row = await follow_up(store, event_id)
    assert (row["status"], row["acknowledged_by"], row["acknowledged_from"]) == (
        "acknowledged", "Nurse Duty", "192.0.2.7")  # fmt: skip
    assert await use_link(store, use("done-token", event_id, "done", by="Dr Who")) == "recorded"
    row = await follow_up(store, event_id)
    assert (row["status"], row["done_by"], row["done_from"]) == ("done", "Dr Who", "192.0.2.7")
    assert await use_link(store, use("done-token", event_id, "done")) == "used"


async def test_an_expired_token_cannot_close_an_overdue_follow_up(store: Store) -> None:
    event_id = await discharged(store)
    await issue_links(store, [issued("old-done", event_id, "done", days=14)])
    late = T0 + timedelta(days=14, seconds=1)
    assert await use_link(store, use("old-done", event_id, "done", at=late)) == "expired"
    row = await follow_up(store, event_id)
    assert (row["status"], row["done_by"]) == ("open", None)


async def test_a_good_token_for_a_follow_up_already_done_changes_nothing(store: Store) -> None:
    event_id = await discharged(store)
    await issue_links(store, [issued("first", event_id, "done"), issued("retry", event_id, "done")])
    assert await use_link(store, use("first", event_id, "done", by="A")) == "recorded"
    assert await use_link(store, use("retry", event_id, "done", by="B")) == "nothing_open"
    assert (await follow_up(store, event_id))["done_by"] == "A"
    assert await use_link(store, use("retry", event_id, "done")) == "used"


async def test_one_token_used_twice_at_once_records_once(store: Store) -> None:
    event_id = await discharged(store)
    await issue_links(store, [issued("raced", event_id, "done")])
    outcomes = await asyncio.gather(*(use_link(store, use("raced", event_id, "done", by=f"n{i}"))
                                      for i in range(4)))  # fmt: skip
    assert sorted(outcomes) == ["recorded", "used", "used", "used"]


async def test_only_hashes_are_stored_and_expired_links_are_pruned(store: Store) -> None:
    event_id = await discharged(store)
    await issue_links(store, [issued("short", event_id, "ack", days=1),
                              issued("long", event_id, "done", days=14)])  # fmt: skip
    await use_link(store, dataclasses.replace(use("long", event_id, "done"), by="x\x00y" * 100))
    async with store.reading() as conn:
        rows = (await conn.execute(sa.select(ack_links))).mappings().all()
    assert {r["token_sha256"] for r in rows} == {digest("short"), digest("long")}
    assert not any("short" in str(v) or v == "long" for r in rows for v in r.values())
    assert await prune_links(store, T0 + timedelta(days=2)) == 1
    async with store.reading() as conn:
        left = (await conn.execute(sa.select(ack_links.c.token_sha256))).scalars().all()
    assert left == [digest("long")]
