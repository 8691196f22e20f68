"""Discharges to GP practices over MESH, against NHS Digital's own mesh-sandbox (started here on
a free port, with and without mutual TLS) playing the GP practices' mailboxes: the GP reads
what arrived with NHS England's mesh-client, checks it, and answers with ITK3
acknowledgements, which the engine reads from its own inbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.webhook import HttpResponse as Answer
from engine import mesh_inbox
from engine.config import AlertsConfig, AlertWebhook
from engine.store.console_mesh import kept_inbox
from engine.store.console_reads import message_detail
from engine.store.schema import mesh_inbox as inbox_table
from tests.adt_factory import adt, patients
from tests.mesh.gp import F, ack_xml, fhir_text, fhir_value
from tests.mesh.kit import (
    DESTINATION,
    config,
    gp_read,
    gp_reply,
    trust_inbox,
    world,
)
from tests.mesh.sandbox import GP_MAILBOXES, Sandbox, free_port, make_certificates, write_data

pytestmark = pytest.mark.integration
GP = GP_MAILBOXES["B12345"]
ACK_WORKFLOW = "TOC_FHIR_MH_DISCH_ACK"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = tmp_path_factory.mktemp("mesh-sandbox")
    write_data(folder)
    running = Sandbox(folder, free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = tmp_path_factory.mktemp("mesh-sandbox-tls")
    write_data(folder)
    make_certificates(folder / "tls")
    running = Sandbox(folder, free_port(), tls=folder / "tls")
    running.start()
    yield running
    running.stop()


def discharge(practice: str = "B12345") -> tuple[str, list[bytes]]:
    """An admission and discharge of a new synthetic patient; the discharge's control id."""
    [patient] = patients(1, run=uuid.uuid4().hex[:6].upper())
    now = datetime.now(UTC).replace(microsecond=0)
    run = uuid.uuid4().hex[:8]
    messages = [adt("A01", patient, f"ADM-{run}", now - timedelta(days=3)),
                adt("A03", patient, f"DIS-{run}", now)]  # fmt: skip
    messages = [m.replace(b"^^B12345|", f"^^{practice}|".encode()) for m in messages]
    return f"DIS-{run}", messages


def drain(sandbox: Sandbox) -> None:
    """Start each test with empty GP inboxes."""
    for mailbox in GP_MAILBOXES.values():
        gp_read(sandbox, mailbox)


async def test_a_discharge_reaches_the_gp_and_the_business_ack_closes_the_loop(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    drain(sandbox)
    control_id, messages = discharge()
    async with world(sandbox, tmp_path, config(sandbox.url)) as w:
        w.start_delivery()
        await w.ingest(*messages)
        delivery = await w.settled(control_id)
        assert delivery.status == "delivered", delivery.last_error
        [arrived] = gp_read(sandbox, GP)
        assert arrived.workflow_id == "TOC_FHIR_MH_DISCH"
        assert arrived.local_id == delivery.idempotency_key
        assert arrived.content_type == "application/fhir+xml"
        bundle = arrived.xml
        header = bundle.find(f"{F}entry/{F}resource/{F}MessageHeader")
        assert header is not None
        assert fhir_value(header, "event/code") == "ITK004D"
        patient = bundle.find(f".//{F}Patient")
        assert patient is not None
        nhs = fhir_value(patient, "identifier/value")
        assert nhs is not None
        assert nhs in messages[1].decode()
        encounter = bundle.find(f".//{F}Encounter")
        assert encounter is not None
        assert fhir_value(encounter, "hospitalization/dischargeDisposition/coding/code") == "19"
        assert "DISCHARGE from mental health inpatient care" in fhir_text(bundle)
        mesh = await w.mesh_message(delivery.id)
        assert mesh.message_id == arrived.message_id
        assert mesh.recipient == GP

        header_id = fhir_value(header, "id")
        assert header_id is not None
        gp_reply(sandbox, GP, ACK_WORKFLOW, ack_xml(header_id, "20013"))
        gp_reply(sandbox, GP, ACK_WORKFLOW, ack_xml(header_id, "30001"))
        polled = await mesh_inbox.poll_once(w.dest, _mailbox(w), w.store)
        assert (polled.read, polled.matched) == (2, 2)
        assert sorted((a.level, a.code, a.positive) for a in await w.acks(delivery.id)) == [
            ("business", "30001", True), ("infrastructure", "20013", True)]  # fmt: skip
        follow_up = await w.follow_up(control_id)
        assert follow_up.status == "acknowledged"
        assert "MESH business acknowledgement 30001" in follow_up.acknowledged_by
        assert trust_inbox(sandbox) == []  # acknowledged on MESH: nothing loops
        detail = await message_detail(w.store, await w.message_row(control_id))
        assert detail is not None
        [shown] = [d for d in detail.deliveries if d.mesh is not None]
        assert shown.mesh is not None
        assert shown.mesh.message_id == arrived.message_id
        assert [a.code for a in shown.mesh.acks] == ["20013", "30001"]


async def test_a_negative_business_ack_dead_letters_the_delivery_with_its_reason(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    drain(sandbox)
    control_id, messages = discharge()
    async with world(sandbox, tmp_path, config(sandbox.url)) as w:
        w.start_delivery()
        await w.ingest(*messages)
        delivery = await w.settled(control_id)
        [arrived] = gp_read(sandbox, GP)
        header_id = fhir_value(arrived.xml, "entry/resource/MessageHeader/id")
        assert header_id is not None
        gp_reply(sandbox, GP, ACK_WORKFLOW, ack_xml(header_id, "30002"))
        await mesh_inbox.poll_once(w.dest, _mailbox(w), w.store)
        row = await w.delivery(control_id)
        assert row.status == "dead"
        assert "30002" in row.last_error
        assert "Patient not known here" in row.last_error
        assert (await w.follow_up(control_id)).status == "open"  # not acknowledged
        assert delivery.status == "delivered"


async def test_a_duplicate_received_answer_to_a_resend_leaves_the_delivery_delivered(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A resend after a lost answer carries the same ids on purpose; the GP system's 20007
    ("Duplicate Message received") must not dead-letter what it already holds."""
    drain(sandbox)
    control_id, messages = discharge()
    async with world(sandbox, tmp_path, config(sandbox.url)) as w:
        w.start_delivery()
        await w.ingest(*messages)
        await w.settled(control_id)
        [arrived] = gp_read(sandbox, GP)
        header_id = fhir_value(arrived.xml, "entry/resource/MessageHeader/id")
        assert header_id is not None
        for code in ("20013", "30001", "20007"):
            gp_reply(sandbox, GP, ACK_WORKFLOW, ack_xml(header_id, code))
        await mesh_inbox.poll_once(w.dest, _mailbox(w), w.store)
        row = await w.delivery(control_id)
        assert row.status == "delivered"
        assert (await w.follow_up(control_id)).status == "acknowledged"


async def test_what_cannot_be_read_is_kept_and_acknowledged_never_lost_or_looped(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with world(sandbox, tmp_path, config(sandbox.url)) as w:
        gp_reply(sandbox, GP, ACK_WORKFLOW, b"this is not XML")
        gp_reply(sandbox, GP, ACK_WORKFLOW, ack_xml(str(uuid.uuid4()), "30001"))
        polled = await mesh_inbox.poll_once(w.dest, _mailbox(w), w.store)
        assert (polled.read, polled.kept_unread) == (2, 2)
        kept = {r.status: r for r in await w.rows(inbox_table)}
        assert kept["unreadable"].payload == b"this is not XML"
        assert "not an ITK3 response" in kept["unreadable"].reason
        assert "not ours" in kept["unmatched"].reason
        assert trust_inbox(sandbox) == []
        listed = await kept_inbox(w.store)
        assert {k.status for k in listed} == {"unreadable", "unmatched"}
        again = await mesh_inbox.poll_once(w.dest, _mailbox(w), w.store)
        assert again.read == 0


async def test_a_practice_without_a_mailbox_is_dead_lettered_and_alerted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    control_id, messages = discharge(practice="Y99977")
    async with world(sandbox, tmp_path, config(sandbox.url)) as w:
        w.start_delivery()
        await w.ingest(*messages)
        delivery = await w.settled(control_id)
        assert delivery.status == "dead"
        assert "no MESH mailbox for GP practice Y99977" in delivery.last_error
        due = await w.store.mesh_to_alert(DESTINATION, None)
        assert [(d.no_mailbox, d.practice) for d in due] == [(True, "Y99977")]
        alert = mesh_inbox.mesh_alert(due[0])
        assert alert.key == f"mesh_no_mailbox.{delivery.id}"
        posted: list[dict[str, object]] = []
        answers = [500, 200]  # the first post fails: the alert is raised at the next check

        async def post(url: str, body: bytes, headers: Mapping[str, str], wait: float) -> Answer:
            posted.append(json.loads(body))
            return Answer(answers.pop(0), b"")

        alerts = AlertsConfig(webhook=AlertWebhook(url="https://alerts.example/in"))
        assert await mesh_inbox.check_alerts(w.dest, w.store, alerts, post, _now()) == 0
        assert await mesh_inbox.check_alerts(w.dest, w.store, alerts, post, _now()) == 1
        assert await mesh_inbox.check_alerts(w.dest, w.store, alerts, post, _now()) == 0
        assert [p["alert"] for p in posted] == [alert.key, alert.key]
        assert posted[-1]["gp_practice"] == "Y99977"
        assert "Y99977" not in str(posted[-1].get("event_id"))


async def test_an_acute_discharge_goes_on_the_inpatient_workflow(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    drain(sandbox)
    control_id, messages = discharge()
    async with world(sandbox, tmp_path, config(sandbox.url, care_setting="acute")) as w:
        w.start_delivery()
        await w.ingest(*messages)
        assert (await w.settled(control_id)).status == "delivered"
        [arrived] = gp_read(sandbox, GP)
        assert arrived.workflow_id == "TOC_FHIR_IP_DISCH"
        assert fhir_value(arrived.xml, "entry/resource/MessageHeader/event/code") == "ITK003D"


async def test_the_config_table_overrides_endpoint_lookup(sandbox: Sandbox, tmp_path: Path) -> None:
    drain(sandbox)
    control_id, messages = discharge()
    extra = f"\n    mailboxes: {{B12345: {GP_MAILBOXES['Y99902']}}}"
    async with world(sandbox, tmp_path, config(sandbox.url, extra=extra)) as w:
        w.start_delivery()
        await w.ingest(*messages)
        assert (await w.settled(control_id)).status == "delivered"
        assert gp_read(sandbox, GP) == []
        [arrived] = gp_read(sandbox, GP_MAILBOXES["Y99902"])
        assert arrived.workflow_id == "TOC_FHIR_MH_DISCH"


async def test_no_business_ack_in_time_raises_an_alert(sandbox: Sandbox, tmp_path: Path) -> None:
    drain(sandbox)
    control_id, messages = discharge()
    extra = "\n    business_ack_within: 1s"
    async with world(sandbox, tmp_path, config(sandbox.url, extra=extra)) as w:
        w.start_delivery()
        await w.ingest(*messages)
        delivery = await w.settled(control_id)
        gp_read(sandbox, GP)
        later = _now() + timedelta(seconds=5)
        due = await w.store.mesh_to_alert(DESTINATION, later - timedelta(seconds=1))
        assert [(d.delivery_id, d.no_mailbox) for d in due] == [(delivery.id, False)]
        assert mesh_inbox.mesh_alert(due[0]).condition == "mesh_business_ack_missing"


async def test_mutual_tls_sends_and_a_client_without_a_certificate_is_refused(
    tls_sandbox: Sandbox, tmp_path: Path
) -> None:
    drain(tls_sandbox)
    assert tls_sandbox.tls is not None
    control_id, messages = discharge()
    async with world(tls_sandbox, tmp_path, config(tls_sandbox.url, tls=tls_sandbox.tls)) as w:
        w.start_delivery()
        await w.ingest(*messages)
        assert (await w.settled(control_id)).status == "delivered"
        [arrived] = gp_read(tls_sandbox, GP)
        assert arrived.workflow_id == "TOC_FHIR_MH_DISCH"
    control_id, messages = discharge()
    bare = config(tls_sandbox.url, tls=tls_sandbox.tls, client_cert=False)
    (tmp_path / "bare").mkdir()
    async with world(tls_sandbox, tmp_path / "bare", bare) as w:
        w.start_delivery()
        await w.ingest(*messages)
        await _attempted(w, control_id)
        row = await w.delivery(control_id)
        assert row.status == "pending"  # transient: retried, never dropped
        assert "MESH" in row.last_error
        assert gp_read(tls_sandbox, GP) == []


async def test_a_wrong_password_is_retried_with_the_reason(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    control_id, messages = discharge()
    async with world(sandbox, tmp_path, config(sandbox.url, password="not-the-password")) as w:
        w.start_delivery()
        await w.ingest(*messages)
        await _attempted(w, control_id)
        row = await w.delivery(control_id)
        assert row.status == "pending"
        assert "credentials" in row.last_error


async def _attempted(w: object, control_id: str) -> None:
    from tests.mesh.kit import World, wait_until_async

    assert isinstance(w, World)

    async def tried() -> bool:
        return bool((await w.delivery(control_id)).attempts >= 1)

    await wait_until_async(tried, 60)


def _mailbox(w: object) -> mesh_inbox.Inbox:
    from engine.senders import mesh_mailbox
    from tests.mesh.kit import World

    assert isinstance(w, World)
    return mesh_mailbox(w.dest)


def _now() -> datetime:
    return datetime.now(UTC)
