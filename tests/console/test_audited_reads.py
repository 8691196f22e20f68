"""Every console list that shows patient identifiers, and every read of the audit log, is
audited (issue 15 point 8): who, when, the filters asked, the page, how many rows, and which
messages were listed, with no patient data beyond what the audit log keeps already. If the
audit row cannot be written, the list is not shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from engine.console.audited import id_ranges, listing
from engine.store import Store, console_reads
from engine.store.console_models import AuditRecord
from engine.store.schema import mesh_inbox
from tests.console.seed import NHS, accepted, deliver_all
from tests.console.web import console, signed_in

pytestmark = pytest.mark.integration
OTHER = "9449305552"


async def _three_patients(store: Store) -> None:
    await store.record_intake([accepted("k1"), accepted("k2", f"nhs:{OTHER}"), accepted("k3")])


async def _entries(store: Store) -> list[AuditRecord]:
    return list(reversed(await console_reads.audit_entries(store)))  # oldest first


def test_ids_are_written_newest_first_with_runs_as_ranges() -> None:
    assert id_ranges([1, 2, 3, 7, 9, 10, 3]) == "10-9,7,3-1"
    assert id_ranges([]) == ""
    filters = {"source": "mh-trust", "status": None, "kind": ""}
    assert listing(filters, [5, 4], before=6, what="messages") == (
        "filters source='mh-trust'; before id 6; 2 rows: messages 5-4"
    )
    assert listing({}, [], before=None, what="entries") == "no filters; 0 rows"
    assert listing({"actor": "x" * 500}, [], before=None, what="entries") == (
        f"filters actor={'x' * 100!r}; 0 rows"
    )


async def test_a_list_of_messages_with_patient_keys_is_audited(store: Store) -> None:
    await _three_patients(store)
    async with console(store, page_size=2) as c, signed_in(c.url, "clara") as s:
        async with s.get("/messages", params={"source": "mh-trust", "reason": "ward round"}) as r:
            assert r.status == 200
            assert f"nhs:{OTHER}" in await r.text()
        async with s.get("/messages", params={"source": "mh-trust", "before": "2"}) as r:
            assert r.status == 200
    first, second = await _entries(store)
    assert (first.actor, first.role, first.action) == ("clara", "clinical", "list_messages")
    assert first.detail == "filters source='mh-trust'; 2 rows: messages 3-2"
    assert (first.reason, first.patient_key, first.message_id) == ("ward round", None, None)
    assert second.detail == "filters source='mh-trust'; before id 2; 1 rows: messages 1"
    assert first.at <= second.at


async def test_a_patient_search_says_what_was_asked_and_how_many_rows(store: Store) -> None:
    await _three_patients(store)
    search = {"patient": NHS, "status": "accepted"}
    async with (
        console(store) as c,
        signed_in(c.url, "olive") as s,
        s.get("/messages", params=search) as r,
    ):
        assert r.status == 200
    [entry] = await _entries(store)
    assert (entry.actor, entry.action, entry.patient_key) == ("olive", "search_patient",
                                                              f"nhs:{NHS}")  # fmt: skip
    assert entry.detail == (
        f"searched '{NHS}'; found nhs:{NHS}; filters status='accepted'; 2 rows: messages 3,1"
    )


async def test_a_list_a_viewer_sees_masked_is_not_audited(store: Store) -> None:
    await _three_patients(store)
    await deliver_all(store, dead=frozenset({"team"}))
    async with console(store) as c, signed_in(c.url, "vera") as s:
        for path in ("/messages", "/dead-letters"):
            async with s.get(path) as r:
                assert r.status == 200
                assert NHS not in await r.text()
    assert await _entries(store) == []


async def test_the_dead_letter_list_is_audited(store: Store) -> None:
    await _three_patients(store)
    await deliver_all(store, dead=frozenset({"team"}))
    async with console(store) as c, signed_in(c.url, "clara") as s:
        async with s.get("/dead-letters", params={"destination": "team"}) as r:
            assert f"nhs:{OTHER}" in await r.text()
        async with s.get("/dead-letters", params={"source": "elsewhere"}) as r:
            assert r.status == 200
    listed, empty = await _entries(store)
    assert (listed.actor, listed.action) == ("clara", "list_dead_letters")
    assert listed.detail == "filters destination='team'; 3 rows: messages 3-1"
    assert empty.detail == "filters source='elsewhere'; 0 rows"


async def test_every_read_of_the_audit_log_is_audited(store: Store) -> None:
    await _three_patients(store)
    async with console(store) as c, signed_in(c.url, "ada") as s:
        async with s.get("/messages/1"):
            pass
        async with s.get("/audit", params={"patient_key": f"nhs:{NHS}"}) as r:
            assert r.status == 200
        async with s.get("/audit") as r:
            page = await r.text()
    assert "view_audit" in page  # the first read, seen by the second
    viewed, first, second = await _entries(store)
    assert (viewed.action, viewed.detail) == ("view_message", "with its audit trail: 0 entries")
    assert (first.actor, first.role, first.action) == ("ada", "admin", "view_audit")
    assert first.patient_key == f"nhs:{NHS}"
    assert first.detail == f"filters patient_key='nhs:{NHS}'; 1 rows: entries {viewed.id}"
    assert second.detail == f"no filters; 2 rows: entries {first.id}-{viewed.id}"


async def test_no_patient_data_beyond_the_audit_logs_own_columns(store: Store) -> None:
    await _three_patients(store)
    await deliver_all(store, dead=frozenset({"team"}))
    async with console(store) as c, signed_in(c.url, "ada") as s:
        for path in ("/messages", "/dead-letters", "/audit", "/messages/2"):
            async with s.get(path) as r:
                assert r.status == 200
    for entry in await _entries(store):
        assert NHS not in (entry.detail or "")
        assert OTHER not in (entry.detail or "")
        assert "SMITH" not in (entry.detail or "")


async def test_when_the_audit_log_cannot_be_written_the_list_is_not_shown(store: Store) -> None:
    await _three_patients(store)
    async with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text(
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH ROW "
                "EXECUTE FUNCTION audit_log_append_only()"))  # fmt: skip
        else:
            await conn.execute(sa.text(
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"))  # fmt: skip
    async with console(store) as c, signed_in(c.url, "clara") as s:
        for path in ("/messages", "/messages?patient=" + NHS):
            async with s.get(path) as r:
                assert r.status >= 500
                assert f"nhs:{NHS}" not in await r.text()


async def test_the_kept_mesh_inbox_messages_are_audited_for_roles_that_see_them(
    store: Store,
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(mesh_inbox).values(
            message_id="20261204-MSG-1", destination="gp-mesh", received_at=datetime.now(UTC),
            status="unreadable", reason="not ITK3", payload=f"PID|{NHS}".encode()))  # fmt: skip
    async with console(store) as c:
        for user in ("vera", "clara"):
            async with signed_in(c.url, user) as s, s.get("/mesh/inbox") as r:
                assert r.status == 200
    [entry] = await _entries(store)
    assert (entry.actor, entry.action) == ("clara", "list_mesh_inbox")
    assert entry.detail == "no filters; 1 rows: MESH messages 20261204-MSG-1"
