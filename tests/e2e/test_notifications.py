"""Discharge notifications through the engine: the right recipient, the follow-up clock, the
acknowledgement link, withdrawals, leave never notified, and alerts raised once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mappings.profile import event_id
from tests.adt_factory import adt, patients
from tests.e2e.harness import (
    EngineProcess,
    Receiver,
    delete_queues,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)

pytestmark = pytest.mark.integration
LIST_TOKEN = "list-token-for-tests-" + "y" * 16
AUTH = {"Authorization": f"Bearer {LIST_TOKEN}"}


@dataclass
class Setup:
    engine: EngineProcess
    source: str
    gp: Receiver
    team: Receiver
    alerts: Receiver

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.engine.http_port}{path}"


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    gp, team, alerts, unused = Receiver(), Receiver(), Receiver(), Receiver()
    for receiver in (gp, team, alerts, unused):
        await receiver.start()
    source, http_port = f"notify-{uuid.uuid4().hex[:8]}", free_port()
    config = engine_config(tmp_path, [source], unused.url, http_port=http_port)
    destination = f"""
  - name: clinicians
    type: notification
    allow_plain_http: true
    ack_base_url: http://127.0.0.1:{http_port}
    ack_secret: "${{CB_TEST_ACK_SECRET}}"
    recipients:
      - {{name: practice-b12345, url: "{gp.url}", gp_practices: [B12345]}}
      - {{name: community-mh-team, url: "{team.url}"}}
"""
    text = config.read_text().replace("routes:", destination.rstrip() + "\nroutes:")
    text = text.replace("to: [receiver]", "to: [clinicians]")
    text += f"""
follow_up:
  list_token: "${{CB_TEST_LIST_TOKEN}}"
  check_interval: 200ms
  unacknowledged_after: 3s
  alert_webhook: {{url: "{alerts.url}"}}
"""
    config.write_text(text)
    engine = EngineProcess(config, http_port, tmp_path / "engine.log")
    await engine.start(env={"CB_TEST_ACK_SECRET": "ack-secret-for-tests-" + "x" * 16,
                            "CB_TEST_LIST_TOKEN": LIST_TOKEN})  # fmt: skip
    yield Setup(engine, source, gp, team, alerts)
    await engine.terminate()
    for receiver in (gp, team, alerts, unused):
        await receiver.stop()
    delete_queues([f"carebridge.inbound.{source}"])


def notifications(receiver: Receiver) -> list[dict[str, Any]]:
    return [r.event for r in receiver.applied_order()]


async def test_discharge_notification_follow_up_acknowledgement_and_withdrawal(
    setup: Setup,
) -> None:
    gp_patient, other = patients(2, run="N")
    now = datetime.now(UTC).replace(microsecond=0)
    no_gp = adt("A03", other, "DIS-2", now).replace(b"PD1|||TEST PRACTICE^^B12345|", b"PD1|||")
    await publish_all(setup.source, [
        adt("A01", gp_patient, "ADM-1", now - timedelta(days=3)),
        adt("A03", gp_patient, "DIS-1", now),
        no_gp,
    ])  # fmt: skip
    await wait_until(lambda: len(setup.gp.applied) >= 1 and len(setup.team.applied) >= 1)
    [note] = notifications(setup.gp)  # the admission is not notified
    assert note["notification"]["kind"] == "discharge"
    assert "follow-up due by" in note["text"].lower()
    due = datetime.fromisoformat(note["notification"]["follow_up"]["due_at"])
    assert due == now + timedelta(hours=72)
    assert {r["resource"]["resourceType"] for r in note["fhir"]["entry"]} >= {"Communication",
                                                                               "Task"}  # fmt: skip
    assert notifications(setup.team)[0]["notification"]["kind"] == "discharge"  # the fallback

    ack_url = note["notification"]["ack_url"]
    assert f"Acknowledge: {ack_url}" in note["text"]
    assert f"Record follow-up done: {note['notification']['done_url']}" in note["text"]
    page_url, _, token = ack_url.partition("#")
    async with aiohttp.ClientSession() as session:
        async with session.get(ack_url) as page:
            assert page.status == 200
            assert "Acknowledge receipt" in await page.text()
        forged = {"token": token[::-1], "by": "Duty nurse"}
        async with session.post(page_url, data=forged) as refused:
            assert refused.status == 403
        async with session.get(setup.url("/follow-ups?state=open")) as anonymous:
            assert anonymous.status == 401
        async with session.post(page_url, data={"token": token, "by": "Duty nurse"}) as ack:
            assert ack.status == 200
            assert "Receipt acknowledged" in await ack.text()
        async with session.get(setup.url("/follow-ups?state=open"), headers=AUTH) as listing:
            rows = {r["event_id"]: r for r in await listing.json()}
    assert rows[event_id(setup.source, "DIS-1")]["status"] == "acknowledged"

    await publish_all(setup.source, [adt("A13", gp_patient, "CAN-1", now + timedelta(hours=1))])
    await wait_until(lambda: len(setup.gp.applied) >= 2, what="the withdrawal")
    withdrawal = notifications(setup.gp)[1]
    assert withdrawal["notification"]["kind"] == "withdrawal"
    assert "WITHDRAWN" in withdrawal["text"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(setup.url("/follow-ups?state=open"), headers=AUTH) as listing,
    ):
        still_open = {r["event_id"] for r in await listing.json()}
    assert event_id(setup.source, "DIS-1") not in still_open


async def test_leave_is_never_notified_and_alerts_are_raised_once(setup: Setup) -> None:
    on_leave, late, quiet = patients(3, run="L")
    now = datetime.now(UTC).replace(microsecond=0)
    backdated = now - timedelta(days=4)  # its 72 hours ran out a day ago
    await publish_all(setup.source, [
        adt("A21", on_leave, "LOA-1", now),
        adt("A03", late, "LATE-1", backdated),
        adt("A03", quiet, "QUIET-1", now),
    ])  # fmt: skip
    overdue, unacknowledged = event_id(setup.source, "LATE-1"), event_id(setup.source, "QUIET-1")

    def conditions() -> list[tuple[str, str]]:
        return [(r.event["condition"], r.event["event_id"]) for r in setup.alerts.receipts]

    await wait_until(lambda: ("follow_up_overdue", overdue) in conditions(), what="overdue")
    await wait_until(lambda: ("notification_unacknowledged", unacknowledged) in conditions(),
                     what="unacknowledged")  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.get(setup.url("/follow-ups?state=overdue"), headers=AUTH) as listing,
    ):
        assert overdue in {r["event_id"] for r in await listing.json()}
    kinds = [n["notification"]["kind"] for n in notifications(setup.gp)]
    assert kinds == ["discharge", "discharge"], "the leave of absence is not a discharge"
    # Many check intervals later (the overdue one has since gone unacknowledged too), each
    # condition was still raised once.
    await wait_until(lambda: ("notification_unacknowledged", overdue) in conditions())
    repeats = [c for c in conditions() if c == ("follow_up_overdue", overdue)]
    assert len(repeats) == 1, "one alert per condition"
