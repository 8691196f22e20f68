"""A patient's journey page over HTTP: every event in time order with its deliveries,
follow-up and corrections, the gaps flagged, only for roles that see patient data, audited."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from engine.store import Store, console_reads
from tests.console.journey_seed import OTHER, seed_journey
from tests.console.seed import NHS, accepted, deliver_all
from tests.console.web import console, signed_in

pytestmark = pytest.mark.integration


async def test_journey_shows_events_in_order_with_gaps_and_is_audited(store: Store) -> None:
    await seed_journey(store)
    query = {"patient": NHS, "reason": "ward round"}
    async with (
        console(store) as c,
        signed_in(c.url, "clara") as s,
        s.get("/patients", params=query) as r,
    ):
        assert r.status == 200
        page = await r.text()
    assert OTHER not in page
    order = [page.index(f'id="event-ev-{k}"') for k in ("a1", "t1", "c1", "d1")]
    assert order == sorted(order)
    assert 'cancelled by <a href="#event-ev-c1">ev-c1</a>' in page
    assert 'cancels <a href="#event-ev-t1">ev-t1</a>' in page
    assert "team: dead-lettered after 1 attempt(s)" in page
    assert "not acknowledged" in page
    assert "follow-up overdue by" in page
    assert "due 2026-01-06 09:00 GMT" in page  # 72 h after the discharge, in local time
    assert '<a href="/messages/4#delivery-' in page
    assert "4 with gaps" in page  # every event has a dead-lettered delivery to the team
    trail = await console_reads.audit_entries(store, actor="clara")
    assert [(t.action, t.patient_key, t.reason) for t in trail] == [
        ("view_journey", f"nhs:{NHS}", "ward round")
    ]


async def test_a_local_number_finds_the_journey_and_a_viewer_is_refused(store: Store) -> None:
    await seed_journey(store)
    async with console(store) as c:
        async with signed_in(c.url, "olive") as s, s.get("/patients?patient=MRN77") as r:
            assert r.status == 200
            assert 'id="event-ev-l1"' in await r.text()
        async with signed_in(c.url, "olive") as s, s.get("/patients?patient=9999999999") as r:
            assert r.status == 404
        async with signed_in(c.url, "vera") as s, s.get(f"/patients?patient={NHS}") as r:
            assert r.status == 403
            assert NHS not in await r.text()
        async with signed_in(c.url, "vera") as s, s.get("/messages/1") as r:
            assert "/patients?" not in await r.text()
        async with signed_in(c.url, "clara") as s, s.get("/messages/1") as r:
            assert f'href="/patients?patient=nhs%3A{NHS}"' in await r.text()
    actions = [t.action for t in await console_reads.audit_entries(store)]
    assert "view_journey" in actions
    assert "search_patient" in actions
    assert not [t for t in await console_reads.audit_entries(store, actor="vera")]


async def test_a_merge_names_the_keys_it_retired_and_dead_letters_link_the_journey(
    store: Store,
) -> None:
    merge = accepted("mg1", kind="merge", destinations=("team",))
    assert merge.accepted is not None
    body = json.dumps(
        {
            "event_id": "ev-mg1",
            "kind": "merge",
            "merge": {
                "survivor": [{"kind": "nhs_number", "value": NHS}],
                "retired": [
                    {"kind": "local", "value": "OLD1", "system": "RXX"},
                    {"kind": "nhs_number", "value": "9990000018"},
                ],
            },
        }
    )
    await store.record_intake([replace(merge, accepted=replace(merge.accepted, body=body))])
    await deliver_all(store, dead=frozenset({"team"}))
    async with console(store) as c, signed_in(c.url, "clara") as s:
        async with s.get("/patients", params={"patient": NHS}) as r:
            page = await r.text()
        async with s.get("/dead-letters") as r:
            dead = await r.text()
    assert "merged in local:mh-trust:RXX:OLD1" in page
    assert "merged in nhs:9990000018" in page
    assert f'href="/patients?patient=nhs%3A{NHS}"' in dead
    assert 'href="/messages/1#delivery-1"' in dead
