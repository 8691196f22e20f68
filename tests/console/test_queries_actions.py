"""The console's read queries and its actions, against SQLite and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from engine.console.auth import Principal
from engine.store import Store, audit, console_reads, console_search
from engine.store import operator as actions
from engine.store.console_search import SearchFilter
from engine.store.schema import audit_log, deliveries
from tests.console.seed import LEASE, NHS, T0, accepted, deliver_all, rejected

pytestmark = pytest.mark.integration
OPERATOR = Principal("olive", "operator", "session", "s1")


async def seeded(store: Store) -> None:
    await store.record_intake(
        [
            accepted("m1"),
            accepted("m2", "local:mh-trust:RXX:L123", kind="admission", at=T0 + timedelta(hours=1)),
            rejected("m3", at=T0 + timedelta(hours=2)),
            accepted("m4", source="acute", destinations=("gp",), at=T0 + timedelta(hours=3)),
        ]
    )
    await deliver_all(store, dead=frozenset({"team"}))


async def ids(store: Store, f: SearchFilter, **kw: object) -> list[int]:
    page = await console_search.search(store, f, **kw)  # type: ignore[arg-type]
    return [r.id for r in page.rows]


async def test_search_finds_messages_by_each_filter(store: Store) -> None:
    await seeded(store)
    assert await ids(store, SearchFilter()) == [4, 3, 2, 1]
    assert await ids(store, SearchFilter(patient=f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}")) == [4, 1]
    assert await ids(store, SearchFilter(patient="L123")) == [2]
    assert await ids(store, SearchFilter(patient="L123", source="mh-trust")) == [2]
    assert await ids(store, SearchFilter(patient="L123", source="acute")) == []
    assert await ids(store, SearchFilter(patient="local:mh-trust:RXX:L123")) == [2]
    assert await ids(store, SearchFilter(control_id="m3")) == [3]
    assert await ids(store, SearchFilter(source="acute")) == [4]
    assert await ids(store, SearchFilter(status="rejected")) == [3]
    assert await ids(store, SearchFilter(kind="admission")) == [2]
    assert await ids(store, SearchFilter(destination="team")) == [2, 1]
    assert await ids(store, SearchFilter(delivery_status="dead")) == [2, 1]
    assert await ids(store, SearchFilter(destination="gp", delivery_status="dead")) == []
    window = SearchFilter(
        since=T0 + timedelta(minutes=30), until=T0 + timedelta(hours=2, minutes=1)
    )
    assert await ids(store, window) == [3, 2]


async def test_a_local_number_with_like_wildcards_matches_only_itself(store: Store) -> None:
    await store.record_intake([accepted("m1", "local:mh-trust:RXX:L1%3")])
    await store.record_intake([accepted("m2", "local:mh-trust:RXX:L1X3")])
    assert await ids(store, SearchFilter(patient="L1%3")) == [1]


async def test_search_pages_by_keyset_to_the_end(store: Store) -> None:
    await store.record_intake([accepted(f"k{i}") for i in range(7)])
    first = await console_search.search(store, SearchFilter(), limit=3)
    assert [r.id for r in first.rows] == [7, 6, 5]
    assert first.next_before == 5
    second = await console_search.search(store, SearchFilter(), before=first.next_before, limit=3)
    third = await console_search.search(store, SearchFilter(), before=second.next_before, limit=3)
    assert [r.id for r in third.rows] == [1]
    assert third.next_before is None


async def test_search_lists_each_deliverys_state(store: Store) -> None:
    await seeded(store)
    page = await console_search.search(store, SearchFilter(control_id="m1"))
    assert list(page.rows[0].deliveries) == [("gp", "delivered"), ("team", "dead")]


async def test_unknown_status_is_a_bad_filter(store: Store) -> None:
    with pytest.raises(console_search.BadFilter):
        await console_search.search(store, SearchFilter(status="lost"))


async def test_detail_has_payload_event_deliveries_and_attempts(store: Store) -> None:
    await seeded(store)
    detail = await console_reads.message_detail(store, 1)
    assert detail is not None
    assert detail.event is not None
    assert detail.message.payload.startswith(b"MSH|")
    assert [(d.destination, d.state, len(d.attempts)) for d in detail.deliveries] == [
        ("gp", "delivered", 1),
        ("team", "dead", 1),
    ]
    assert detail.deliveries[1].attempts[0].status_code == 422
    assert await console_reads.message_detail(store, 99) is None


async def test_replay_of_a_dead_letter_makes_it_due_now_and_keeps_attempts(store: Store) -> None:
    await seeded(store)
    dead = (await console_reads.dead_letters(store)).rows
    assert [d.destination for d in dead] == ["team", "team"]
    changed = await actions.replay_delivery(store, OPERATOR, dead[0].id, "fixed at the GP")
    assert changed.count == 1
    claimed = await store.claim_due(["team"], limit=10, lease=LEASE, owner="t")
    assert [(c.id, c.attempts) for c in claimed] == [(dead[0].id, 1)]
    [entry] = await console_reads.audit_entries(store)
    assert (entry.actor, entry.action, entry.delivery_id, entry.reason) == (
        "olive",
        "replay",
        dead[0].id,
        "fixed at the GP",
    )
    assert entry.patient_key == "local:mh-trust:RXX:L123"
    assert entry.message_id == 2


async def test_replay_of_a_pending_delivery_changes_nothing(store: Store) -> None:
    await store.record_intake([accepted("m1")])
    assert (await actions.replay_delivery(store, OPERATOR, 1)).count == 0
    assert await console_reads.audit_entries(store) == []


async def test_replay_message_resends_every_settled_delivery(store: Store) -> None:
    await seeded(store)
    assert (await actions.replay_message(store, OPERATOR, 1)).count == 2
    assert (await store.counts())["deliveries.pending"] == 2


async def test_resolve_closes_a_dead_letter_with_a_comment(store: Store) -> None:
    await seeded(store)
    [newest, _] = (await console_reads.dead_letters(store)).rows
    with pytest.raises(ValueError, match="comment"):
        await actions.resolve_delivery(store, OPERATOR, newest.id, "  ")
    assert (await actions.resolve_delivery(store, OPERATOR, newest.id, "sent by fax")).count
    assert (await actions.resolve_delivery(store, OPERATOR, newest.id, "again")).count == 0
    assert [d.id for d in (await console_reads.dead_letters(store)).rows] != [newest.id]
    assert len((await console_reads.dead_letters(store)).rows) == 1
    detail = await console_reads.message_detail(store, 2)
    assert detail is not None
    team = detail.deliveries[1]
    assert (team.state, team.resolved_by, team.resolution) == (
        "resolved",
        "olive",
        "sent by fax",
    )


async def test_resolve_a_rejected_message(store: Store) -> None:
    await seeded(store)
    assert (await actions.resolve_message(store, OPERATOR, 3, "resent corrected")).count == 1
    assert (await actions.resolve_message(store, OPERATOR, 1, "not rejected")).count == 0


async def test_held_delivery_is_not_claimed_and_still_holds_the_patients_later_ones(
    store: Store,
) -> None:
    await store.record_intake(
        [accepted("m1", destinations=("gp",)), accepted("m2", destinations=("gp",))]
    )
    assert (await actions.hold_delivery(store, OPERATOR, 1, "wrong patient?")).count == 1
    assert await store.claim_due(["gp"], limit=10, lease=LEASE, owner="t") == []
    page = await console_search.search(store, SearchFilter(delivery_status="held"))
    assert [r.id for r in page.rows] == [1]
    assert (await actions.release_delivery(store, OPERATOR, 1)).count == 1
    claimed = await store.claim_due(["gp"], limit=10, lease=LEASE, owner="t")
    assert [c.id for c in claimed] == [1]


async def test_a_delivery_in_flight_cannot_be_held(store: Store) -> None:
    await store.record_intake([accepted("m1", destinations=("gp",))])
    await store.claim_due(["gp"], limit=10, lease=LEASE, owner="t")
    assert (await actions.hold_delivery(store, OPERATOR, 1)).count == 0


async def test_bulk_replay_takes_only_the_filtered_dead_letters_seen(store: Store) -> None:
    await seeded(store)
    await store.record_intake([accepted("m5")])
    await deliver_all(store, dead=frozenset({"gp", "team"}))
    listed = (await console_reads.dead_letters(store)).rows
    assert len(listed) == 4
    up_to = listed[1].id  # the operator saw all but the newest
    changed = await actions.replay_dead_letters(
        store,
        OPERATOR,
        destination="team",
        source="mh-trust",
        up_to=up_to,
        limit=100,
        reason="GP system back",
    )
    assert changed.count == 2
    rows = await console_reads.audit_entries(store)
    assert {r.action for r in rows} == {"replay_bulk"}
    assert len(rows) == 2
    left = (await console_reads.dead_letters(store)).rows
    assert sorted(d.destination for d in left) == ["gp", "team"]


async def test_audit_log_refuses_update_and_delete(store: Store) -> None:
    await audit.record(store, OPERATOR, audit.AuditEntry("search_patient", patient_key="nhs:1"))
    for statement in (sa.update(audit_log).values(actor="x"), sa.delete(audit_log)):
        with pytest.raises(sa.exc.DBAPIError):
            async with store.engine.begin() as conn:
                await conn.execute(statement)
    assert len(await console_reads.audit_entries(store)) == 1


async def test_deliveries_table_untouched_by_views(store: Store) -> None:
    await seeded(store)
    async with store.engine.connect() as conn:
        before = (await conn.execute(sa.select(deliveries))).all()
    await console_search.search(store, SearchFilter(patient=NHS))
    await console_reads.message_detail(store, 1)
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.select(deliveries))).all() == before
    assert datetime.now(UTC) > T0
