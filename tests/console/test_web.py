"""The console over HTTP: sign-in, roles, CSRF, escaping, audit, actions and metrics."""

from __future__ import annotations

import re

import aiohttp
import pytest

from engine.store import Store, console_reads
from tests.console.seed import NHS, accepted, deliver_all, hl7, rejected
from tests.console.web import PASSWORD, TOKEN, console, csrf_of, signed_in

pytestmark = pytest.mark.integration


async def seeded(store: Store) -> None:
    await store.record_intake(
        [
            accepted("m1", payload=hl7("m1", name="O'BRIEN^<script>alert(1)</script>")),
            rejected("m2"),
        ]
    )
    await deliver_all(store, dead=frozenset({"team"}))


async def test_without_sign_in_a_browser_is_sent_to_sign_in_and_a_script_refused(
    store: Store,
) -> None:
    async with console(store) as c, aiohttp.ClientSession(base_url=c.url) as plain:
        async with plain.get("/messages", headers={"Accept": "text/html"},
                             allow_redirects=False) as r:  # fmt: skip
            assert (r.status, r.headers["Location"]) == (303, "/login")
        async with plain.get("/metrics") as r:
            assert r.status == 401


async def test_wrong_password_or_missing_form_token_is_refused(store: Store) -> None:
    async with console(store) as c, signed_in(c.url, None) as s:
        async with s.get("/login") as r:
            token = csrf_of(await r.text())
        async with s.post("/login", data={"name": "olive", "password": "nope", "csrf": token}) as r:
            assert r.status == 401
        async with s.post("/login", data={"name": "olive", "password": PASSWORD}) as r:
            assert r.status == 403


async def test_clinical_user_finds_a_patient_and_reads_the_message_escaped(store: Store) -> None:
    await seeded(store)
    async with console(store) as c, signed_in(c.url, "clara") as s:
        async with s.get("/messages", params={"patient": NHS, "reason": "ward round"}) as r:
            page = await r.text()
            assert r.status == 200
            assert 'href="/messages/1"' in page
            assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        async with s.get("/messages/1") as r:
            page = await r.text()
        assert "PID|1||9434765919" in page  # one segment a line
        assert "<script>alert(1)</script>" not in page
        assert "O&#x27;BRIEN^&lt;script&gt;" in page
        assert 'team: <span class="state">dead</span>' in page
        assert "Replay" not in page  # clinical users read, operators act
    actions = [(e.actor, e.action, e.patient_key, e.reason)
               for e in await console_reads.audit_entries(store)]  # fmt: skip
    assert actions == [("clara", "view_message", f"nhs:{NHS}", None),
                       ("clara", "search_patient", f"nhs:{NHS}", "ward round")]  # fmt: skip


async def test_viewer_sees_no_patient_data_and_cannot_search_patients(store: Store) -> None:
    await seeded(store)
    async with console(store) as c, signed_in(c.url, "vera") as s:
        async with s.get("/messages", params={"patient": NHS}) as r:
            assert r.status == 403
        for path in ("/messages", "/messages/1", "/messages/2", "/dead-letters"):
            async with s.get(path) as r:
                page = await r.text()
                assert r.status == 200, path
                assert not re.search(r"943\D?476\D?5919|BRIEN|bad PID|PID-3: no", page), path
    assert await console_reads.audit_entries(store) == []


async def test_operator_replays_a_dead_letter_with_the_form_token(store: Store) -> None:
    await seeded(store)
    async with console(store) as c, signed_in(c.url, "olive") as s:
        async with s.get("/messages/1") as r:
            page = await r.text()
        [team] = re.findall(r'action="(/deliveries/\d+/replay)"', page)[1:]
        async with s.post(team, data={"back": "1"}) as r:
            assert r.status == 403  # no CSRF token
        async with s.post(team, data={"back": "1", "csrf": csrf_of(page), "comment": "fixed"},
                          allow_redirects=False) as r:  # fmt: skip
            assert r.status == 303
            assert r.headers["Location"] == "/messages/1?done=replay&n=1"
        async with s.get("/messages/1?done=replay&n=1") as r:
            assert "Replayed: 1" in await r.text()
    assert c.woken == [1]
    assert (await store.counts())["deliveries.pending"] == 1
    replay = [e for e in await console_reads.audit_entries(store) if e.action == "replay"]
    assert [(e.actor, e.reason) for e in replay] == [("olive", "fixed")]


async def test_clinical_user_cannot_replay(store: Store) -> None:
    await seeded(store)
    async with console(store) as c, signed_in(c.url, "clara") as s:
        async with s.get("/messages/1") as r:
            token = csrf_of(await r.text())
        async with s.post("/messages/1/replay", data={"csrf": token}) as r:
            assert r.status == 403
    assert "deliveries.pending" not in await store.counts()


async def test_bulk_replay_from_the_dead_letter_list(store: Store) -> None:
    await store.record_intake([accepted(f"b{i}", f"nhs:{i:010d}") for i in range(3)])
    await deliver_all(store, dead=frozenset({"team"}))
    async with console(store) as c, signed_in(c.url, "olive") as s:
        async with s.get("/dead-letters", params={"destination": "team"}) as r:
            page = await r.text()
        up_to = re.search(r'name="up_to" value="(\d+)"', page)
        assert up_to is not None
        form = {"csrf": csrf_of(page), "destination": "team", "source": "", "up_to": up_to[1]}
        async with s.post("/dead-letters/replay", data=form) as r:
            assert "Replayed: 3" in await r.text()
    assert (await store.counts())["deliveries.pending"] == 3


async def test_metrics_for_prometheus_with_a_bearer_token(store: Store) -> None:
    await seeded(store)
    async with console(store) as c, aiohttp.ClientSession(base_url=c.url) as plain:
        async with plain.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            text = await r.text()
        async with plain.get("/metrics", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
    assert 'carebridge_messages{source="mh-trust",status="rejected"} 1' in text
    assert 'carebridge_deliveries{destination="team",state="dead"} 1' in text
    assert 'carebridge_attempts_recent{destination="gp",outcome="delivered"} 1' in text
    assert 'carebridge_backlog_oldest_age_seconds{destination="gp"} 0' in text


async def test_dashboard_and_audit_log_by_role(store: Store) -> None:
    await seeded(store)
    async with console(store) as c:
        async with signed_in(c.url, "olive") as s:
            async with s.get("/dashboard") as r:
                assert "mh-trust" in await r.text()
            async with s.get("/audit") as r:
                assert r.status == 403
        async with signed_in(c.url, "ada") as s:
            async with s.get("/messages/1"):
                pass
            async with s.get("/audit") as r:
                page = await r.text()
            assert "view_message" in page
            assert f"nhs:{NHS}" in page
