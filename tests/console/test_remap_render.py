"""Re-mapping a message with today's config, and each destination's rendered payload."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import sqlalchemy as sa

from engine.config import Config, feed_profiles, follow_up_rules, parse_config
from engine.console.app import start_console
from engine.console.auth import Principal
from engine.console.remap import remap_message
from engine.console.rendering import render_for
from engine.preparation import prepare
from engine.store import Store
from engine.store.schema import audit_log, deliveries, events
from tests.adt_factory import adt, patients
from tests.console.seed import LEASE
from tests.console.web import TOKEN, console_config, csrf_of, signed_in

pytestmark = pytest.mark.integration
OPERATOR = Principal("olive", "operator", "session", "s1")
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
PATIENT = patients(1)[0]

_DESTINATIONS = """
destinations:
  - {name: team, type: webhook, url: "https://team.example/x"}
  - {name: gp, type: webhook, url: "https://gp.example/x"}
  - {name: pas, type: mllp, host: pas.example, port: 2575}
  - {name: fhir, type: fhir, base_url: "https://fhir.example/R4"}
  - {name: bus, type: amqp}
  - name: notify
    type: notification
    ack_base_url: "https://cb.example"
    ack_secret: ${ACK}
    recipients: [{name: gp-team, url: "https://gp.example/notify"}]
"""
YESTERDAY = parse_config(
    f"""
sources: [{{name: mh, care_setting: mental_health}}]
{_DESTINATIONS}
routes:
  - {{name: team, match: {{kinds: [admission, discharge]}}, to: [team]}}
  - {{name: gp, match: {{kinds: [discharge]}}, to: [gp]}}
""",
    env={"ACK": "a" * 32},
)
TODAY = parse_config(
    f"""
sources: [{{name: mh, care_setting: community}}]
{_DESTINATIONS}
routes:
  - {{name: team, match: {{kinds: [admission, discharge]}}, to: [team, gp]}}
""",
    env={"ACK": "a" * 32},
)


async def ingest(store: Store, config: Config, payload: bytes, at: datetime = T0) -> None:
    prepared = prepare(
        "mh",
        payload,
        config=config,
        profiles=feed_profiles(config),
        received_at=at,
        follow_up_rules=follow_up_rules(config),
    )
    assert prepared.record.accepted is not None, prepared.record.reason
    await store.record_intake([prepared.record])


async def finish(store: Store, outcome: str) -> None:
    from engine.store import AttemptRecord, DeadLettered, Delivered

    now = datetime.now(UTC)
    for c in await store.claim_due(["team", "gp"], limit=100, lease=LEASE, owner="t", now=now):
        if outcome == "dead":
            await store.finish_delivery(c, [AttemptRecord(now, 1, "permanent", 422)],
                                        DeadLettered("HTTP 422"))  # fmt: skip
        else:
            await store.finish_delivery(c, [AttemptRecord(now, 1, "delivered", 200)],
                                        Delivered(now))  # fmt: skip


async def rows(store: Store) -> list[tuple[str, str, str, int]]:
    async with store.engine.connect() as conn:
        found = await conn.execute(
            sa.select(
                deliveries.c.destination,
                deliveries.c.status,
                deliveries.c.idempotency_key,
                deliveries.c.attempts,
            ).order_by(deliveries.c.id)
        )
        return [tuple(r) for r in found]


async def test_remap_updates_the_event_and_adds_only_missing_deliveries(store: Store) -> None:
    await ingest(store, YESTERDAY, adt("A01", PATIENT, "C1", T0))
    await finish(store, "delivered")
    async with store.engine.connect() as conn:
        event_id = (await conn.execute(sa.select(events.c.event_id))).scalar_one()
    result = await remap_message(store, OPERATOR, 1, TODAY, "route to GP was missing")
    assert (result.outcome, result.created, result.delivered) == ("remapped", ("gp",), ("team",))
    assert await rows(store) == [
        ("team", "delivered", f"{event_id}.team", 1),
        ("gp", "pending", f"{event_id}.gp", 0),
    ]
    async with store.engine.connect() as conn:
        ev = (await conn.execute(sa.select(events.c.care_setting, events.c.body))).one()
        audited = (await conn.execute(sa.select(audit_log.c.action, audit_log.c.delivery_id))).all()
    assert ev.care_setting == "community"
    assert json.loads(ev.body)["event_id"] == event_id
    assert [tuple(a) for a in audited] == [("remap", None), ("remap", 2)]
    # Again: nothing is duplicated; the pending delivery simply sends the new body.
    again = await remap_message(store, OPERATOR, 1, TODAY)
    assert (again.created, again.updated, again.count) == ((), ("gp",), 0)
    assert len(await rows(store)) == 2


async def test_remap_requeues_dead_letters_keeping_their_key_and_attempts(store: Store) -> None:
    await ingest(store, YESTERDAY, adt("A03", PATIENT, "C1", T0))
    await finish(store, "dead")
    result = await remap_message(store, OPERATOR, 1, YESTERDAY)
    assert sorted(result.requeued) == ["gp", "team"]
    assert result.created == ()
    assert [(d, s, n) for d, s, _k, n in await rows(store)] == [
        ("team", "pending", 1),
        ("gp", "pending", 1),
    ]


async def test_remap_never_queues_an_old_event_behind_a_newer_one(store: Store) -> None:
    await ingest(store, YESTERDAY, adt("A01", PATIENT, "C1", T0))
    await ingest(store, YESTERDAY, adt("A03", PATIENT, "C2", T0 + timedelta(hours=1)))
    result = await remap_message(store, OPERATOR, 1, TODAY)
    # The discharge already went to the GP: the admission would arrive after it.
    assert (result.created, result.skipped) == ((), ("gp",))
    assert len(await rows(store)) == 3


async def test_remap_refuses_a_rejected_message_and_another_patient(store: Store) -> None:
    await store.record_intake(
        [prepare("mh", b"MSH|garbage", config=YESTERDAY, profiles=feed_profiles(YESTERDAY),
                 received_at=T0).record]
    )  # fmt: skip
    assert (await remap_message(store, OPERATOR, 1, TODAY)).outcome == "refused"
    assert (await remap_message(store, OPERATOR, 99, TODAY)).outcome == "missing"
    await ingest(store, YESTERDAY, adt("A01", PATIENT, "C1", T0))
    async with store.writing() as conn:
        await conn.execute(sa.update(events).values(patient_key="nhs:0000000000"))
        await conn.commit()
    refused = await remap_message(store, OPERATOR, 2, TODAY)
    assert refused.outcome == "refused"
    assert "patient" in (refused.problem or "")


# ---- rendering ------------------------------------------------------------------------------


def test_each_destination_type_renders_what_it_sends() -> None:
    prepared = prepare("mh", adt("A03", PATIENT, "C1", T0), config=TODAY,
                       profiles=feed_profiles(TODAY), received_at=T0)  # fmt: skip
    assert prepared.record.accepted is not None
    body = prepared.record.accepted.body
    assert json.loads(render_for(TODAY, "team", body)) == json.loads(body)
    assert json.loads(render_for(TODAY, "bus", body)) == json.loads(body)
    hl7 = render_for(TODAY, "pas", body, now=T0).splitlines()
    assert hl7[0].startswith("MSH|^~\\&|CAREBRIDGE|")
    assert "ADT^A03" in hl7[0]
    assert any(line.startswith(f"PID|1||{PATIENT.nhs_number}") for line in hl7)
    bundle = json.loads(render_for(TODAY, "fhir", body, now=T0))
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "message"
    note = render_for(TODAY, "notify", body, now=T0)
    assert note.startswith("To gp-team")
    assert "token-not-shown" in note
    assert "no longer" in render_for(TODAY, "gone", body)


# ---- over HTTP ------------------------------------------------------------------------------


@asynccontextmanager
async def running(store: Store) -> AsyncIterator[tuple[str, list[int]]]:
    woken: list[int] = []
    runner, port = await start_console(
        store, console_config(), on_replay=lambda: woken.append(1), engine_config=TODAY
    )
    try:
        yield f"http://127.0.0.1:{port}", woken
    finally:
        await runner.cleanup()


async def test_operator_remaps_from_the_message_page_and_a_viewer_cannot(store: Store) -> None:
    await ingest(store, YESTERDAY, adt("A01", PATIENT, "C1", T0))
    async with running(store) as (url, woken):
        async with signed_in(url, "vera") as s:
            async with s.get("/messages/1") as r:
                page = await r.text()
            assert "/messages/1/remap" not in page
            assert "PID|" not in page
            async with s.post("/messages/1/remap", data={"csrf": csrf_of(page)}) as r:
                assert r.status == 403
        async with aiohttp.ClientSession(base_url=url) as plain:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with plain.post("/messages/1/remap", headers=headers) as r:
                assert r.status == 403  # the token is a viewer's
        async with signed_in(url, "olive") as s:
            async with s.get("/messages/1") as r:
                page = await r.text()
            assert 'action="/messages/1/remap"' in page
            assert "Rendered for team" in page
            form = {"csrf": csrf_of(page), "back": "1", "comment": "GP route added"}
            async with s.post("/messages/1/remap", data=form) as r:
                page = await r.text()
                assert str(r.url).endswith("/messages/1?done=remap&n=1")
            assert "Re-mapped with today" in page
            assert "remap by olive" in page
    assert woken == [1]
    assert [d for d, *_ in await rows(store)] == ["team", "gp"]
