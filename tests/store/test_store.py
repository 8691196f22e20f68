"""The store's contract, run against SQLite and the real PostgreSQL alike."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.store import (
    AcceptedEvent,
    AttemptRecord,
    DeadLettered,
    Delivered,
    FollowUpRecord,
    IntakeRecord,
    Rescheduled,
    Store,
    StoreRefused,
    migrate,
)
from engine.store.schema import follow_ups, metadata

pytestmark = pytest.mark.integration
LEASE = timedelta(seconds=60)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(
    key: str,
    patient: str = "nhs:9434765919",
    payload: bytes | None = None,
    destinations: tuple[str, ...] = ("gp", "team"),
) -> IntakeRecord:
    event_id = f"ev-{key}"
    return IntakeRecord(
        source="mh-trust",
        payload=payload or f"MSH|{key}".encode(),
        received_at=T0,
        format="hl7v2",
        message_key=key,
        accepted=AcceptedEvent(
            event_id=event_id,
            kind="discharge",
            care_setting="mental_health",
            patient_key=patient,
            occurred_at=T0,
            body='{"x": 1}',
            destinations=tuple((d, False) for d in destinations),
        ),
    )


async def test_migrations_produce_exactly_the_declared_schema(store: Store) -> None:
    def diff(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        assert await conn.run_sync(migrate.current_revision) == migrate.head_revision()


async def test_migrations_are_idempotent_on_reopen(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(migrate.upgrade)
    assert await store.ping()


async def test_accepted_message_creates_event_and_one_delivery_per_destination(
    store: Store,
) -> None:
    [result] = await store.record_intake([record("m1")])
    assert (result.status, result.deliveries) == ("accepted", 2)
    assert await store.counts() == {"messages.accepted": 1, "deliveries.pending": 2}


async def test_redelivered_message_is_a_duplicate_without_deliveries(store: Store) -> None:
    await store.record_intake([record("m1")])
    results = await store.record_intake([record("m1"), record("m1")])
    assert [r.status for r in results] == ["duplicate", "duplicate"]
    assert await store.counts() == {
        "messages.accepted": 1,
        "messages.duplicate": 2,
        "deliveries.pending": 2,
    }


async def test_reused_message_id_with_other_content_is_rejected_not_dropped(store: Store) -> None:
    await store.record_intake([record("m1")])
    [result] = await store.record_intake([record("m1", payload=b"MSH|other")])
    assert result.status == "rejected"
    assert "different content" in (result.reason or "")


async def test_rejected_message_is_kept_with_its_reason(store: Store) -> None:
    rejected = IntakeRecord(
        source="mh-trust",
        payload=b"garbage\x00",
        received_at=T0,
        reason="not HL7v2\x00",
        error_location="MSH",
        error_code="100",
    )
    [result] = await store.record_intake([rejected])
    assert result.status == "rejected"
    [row] = await store.message_log()
    assert (row["reason"], row["error_location"]) == ("not HL7v2", "MSH")


async def test_claims_only_the_head_of_each_patients_queue(store: Store) -> None:
    await store.record_intake([record("a1", "p:a"), record("a2", "p:a"), record("b1", "p:b")])
    claimed = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w1")
    assert [c.event_id for c in claimed] == ["ev-a1", "ev-b1"]
    # Leased heads are neither claimed again nor passed by their successors.
    assert await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w2") == []
    await store.finish_delivery(claimed[0], [], Delivered(T0))
    again = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w2")
    assert [c.event_id for c in again] == ["ev-a2"]


async def test_rescheduled_head_holds_its_patient_but_not_others(store: Store) -> None:
    await store.record_intake([record("a1", "p:a"), record("a2", "p:a")])
    [head] = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w")
    attempt = AttemptRecord(started_at=T0, duration_ms=3, outcome="transient", status_code=503)
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.finish_delivery(head, [attempt], Rescheduled(later, "HTTP 503"))
    assert await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w") == []
    await store.record_intake([record("b1", "p:b")])
    [other] = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w")
    assert other.event_id == "ev-b1"
    await store.finish_delivery(other, [], Delivered(T0))
    due = await store.claim_due(
        ["gp"], limit=10, lease=LEASE, owner="w", now=later + timedelta(seconds=1)
    )
    assert [(c.event_id, c.attempts) for c in due] == [("ev-a1", 1)]


@pytest.mark.parametrize("hold", [False, True])
async def test_dead_letter_holds_later_events_only_when_configured(
    store: Store, hold: bool
) -> None:
    await store.record_intake([record("a1", "p:a"), record("a2", "p:a")])
    [head] = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w")
    await store.finish_delivery(head, [], DeadLettered("refused", hold=hold))
    after = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="w")
    assert [c.event_id for c in after] == ([] if hold else ["ev-a2"])


async def test_expired_lease_is_claimed_again(store: Store) -> None:
    await store.record_intake([record("a1")])
    [first] = await store.claim_due(["gp"], limit=1, lease=timedelta(seconds=1), owner="dead")
    later = datetime.now(UTC) + timedelta(seconds=5)
    [again] = await store.claim_due(["gp"], limit=1, lease=LEASE, owner="alive", now=later)
    assert again.id == first.id


async def test_finishing_records_every_attempt(store: Store) -> None:
    await store.record_intake([record("a1")])
    [c] = await store.claim_due(["gp"], limit=1, lease=LEASE, owner="w")
    tries = [
        AttemptRecord(started_at=T0, duration_ms=1, outcome="transient", status_code=503),
        AttemptRecord(started_at=T0, duration_ms=1, outcome="delivered", status_code=200),
    ]
    await store.finish_delivery(c, tries, Delivered(T0))
    counts = await store.counts()
    assert counts["deliveries.delivered"] == 1
    async with store.engine.connect() as conn:
        n = (
            await conn.execute(
                sa.text(
                    "SELECT count(*), max(attempts) FROM attempts "
                    "JOIN deliveries ON deliveries.id = delivery_id"
                )
            )
        ).one()
    assert tuple(n) == (2, 2)


async def test_a_delivery_finished_twice_in_one_batch_is_recorded_in_order(store: Store) -> None:
    """Re-claimed after its lease ran out while the first send still ran, one delivery may be
    in one batch of outcomes twice: every attempt is recorded, and a delivery that reached its
    destination is recorded delivered, never left pending to be sent again (on PostgreSQL one
    UPDATE ... FROM unnest applied one of the two rows, whichever)."""
    await store.record_intake([record("a1")])
    [c] = await store.claim_due(["gp"], limit=1, lease=LEASE, owner="w")
    failed = AttemptRecord(started_at=T0, duration_ms=1, outcome="transient", status_code=503)
    sent = AttemptRecord(started_at=T0, duration_ms=1, outcome="delivered", status_code=200)
    await store.finish_deliveries([
        (c, [failed], Rescheduled(T0 + timedelta(minutes=5), "503")),
        (c, [sent], Delivered(T0)),
    ])  # fmt: skip
    async with store.engine.connect() as conn:
        row = (await conn.execute(
            sa.text("SELECT status, (SELECT count(*) FROM attempts) FROM deliveries "
                    "WHERE id = :id"), {"id": c.id})).one()  # fmt: skip
    assert tuple(row) == ("delivered", 2)


async def test_a_naive_datetime_is_refused_not_read_as_local_time(store: Store) -> None:
    await store.record_intake([record("a1")])
    [c] = await store.claim_due(["gp"], limit=1, lease=LEASE, owner="w")
    with pytest.raises(StoreRefused):
        await store.finish_delivery(c, [], Rescheduled(datetime(2026, 7, 1, 12), "later"))


async def test_concurrent_claimers_never_share_a_delivery(store: Store) -> None:
    await store.record_intake([record(f"m{i}", f"p:{i}") for i in range(40)])
    results = await asyncio.gather(
        *(store.claim_due(["gp", "team"], limit=15, lease=LEASE, owner=f"w{i}") for i in range(4))
    )
    ids = [c.id for batch in results for c in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_retention_prunes_only_settled_messages(store: Store) -> None:
    await store.record_intake([record("done"), record("waiting", "p:w"), record("done")])
    rejected = IntakeRecord(source="mh-trust", payload=b"x", received_at=T0, reason="bad")
    await store.record_intake([rejected])
    for c in await store.claim_due(["gp", "team"], limit=10, lease=LEASE, owner="w"):
        if c.event_id == "ev-done":
            await store.finish_delivery(c, [], Delivered(T0))
    # Received at T0, so all are old enough; the young cutoff keeps everything.
    assert await store.prune(T0 - timedelta(days=1)) == 0
    assert await store.prune(T0 + timedelta(days=1)) == 2  # "done" and its duplicate
    assert await store.counts() == {"messages.accepted": 1, "messages.rejected": 1,
                                    "deliveries.pending": 2}  # fmt: skip
    assert await store.prune(T0 + timedelta(days=1)) == 0


async def test_a_duplicate_of_a_message_still_waiting_goes_with_its_original(
    store: Store,
) -> None:
    await store.record_intake([record("waiting", "p:w")])
    await store.record_intake([record("waiting", "p:w")])  # the same event id: a duplicate
    old_enough = T0 + timedelta(days=1)
    assert await store.prune(old_enough) == 0  # the original's deliveries are pending
    for c in await store.claim_due(["gp", "team"], limit=10, lease=LEASE, owner="w"):
        await store.finish_delivery(c, [], Delivered(T0))
    assert await store.prune(old_enough) == 2
    assert await store.counts() == {}


async def test_retention_keeps_open_follow_ups_and_prunes_settled_ones(store: Store) -> None:
    clock = FollowUpRecord("72h", "72h", T0, T0 + timedelta(hours=72))
    followed = record("f1", destinations=("gp",))
    assert followed.accepted is not None
    followed = dataclasses.replace(
        followed, accepted=dataclasses.replace(followed.accepted, follow_up=clock)
    )
    await store.record_intake([followed])
    [c] = await store.claim_due(["gp"], limit=1, lease=LEASE, owner="w")
    await store.finish_delivery(c, [], Delivered(T0))
    assert await store.prune(T0 + timedelta(days=1)) == 0  # its follow-up is still open
    async with store.writing() as conn:
        await conn.execute(sa.update(follow_ups).values(status="done"))
        await conn.commit()
    assert await store.prune(T0 + timedelta(days=1)) == 1
