"""Render, then send: each destination type's pure renderer, and what every sender does alike
(an event that cannot be rendered is permanent; every HTTP sender honours Retry-After; one
signature scheme), against the contract-tested fakes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.rabbitmq import BindingSpec, ExchangeSpec, QueueSpec, Topology
from adapters.webhook import HttpResponse
from engine.config import parse_config
from engine.console.rendering import render_for
from engine.delivery.amqp import AmqpSender, render_amqp
from engine.delivery.fhir import FhirSender
from engine.delivery.http import SIGNATURE_HEADER, sign
from engine.delivery.mllp import MllpSender, mllp_control_id, render_mllp
from engine.delivery.notification import NotificationSender
from engine.delivery.sending import Sender
from engine.delivery.webhook import WebhookSender, render_webhook
from engine.store import ClaimedDelivery
from engine.store.ack_links import IssuedLink
from mappings.clinical.follow_up import DEFAULT_RULES
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent
from mappings.profile import FeedProfile
from tests.adt_factory import adt, patients
from tests.fakes import FakeHttp, FakeLink, acking, answering
from tests.memory_broker import MemoryBroker

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
[PATIENT] = patients(1)
EVENT = map_hl7v2(adt("A03", PATIENT, "CTRL-1", NOW), FeedProfile(feed="mh"))
HOOK_SECRET = "a-hook-secret-of-32-characters--"
CONFIG = parse_config(
    """
sources: [{name: mh, care_setting: mental_health}]
destinations:
  - {name: team, type: webhook, url: "https://team.example/x", secret: "${HOOK}"}
  - {name: pas, type: mllp, host: pas.example, port: 2575}
  - {name: ehr, type: fhir, base_url: "https://ehr.example/fhir"}
  - {name: bus, type: amqp}
  - name: notify
    type: notification
    ack_base_url: "https://cb.example"
    ack_secret: ${ACK}
    recipients: [{name: gp-team, url: "https://gp.example/notify", secret: "${HOOK}"}]
routes: []
""",
    env={"ACK": "a" * 32, "HOOK": HOOK_SECRET},
)


def delivery(destination: str, body: str | None = None) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=1, event_id=EVENT.event_id, destination=destination, patient_key="nhs:x",
        idempotency_key=f"{EVENT.event_id}.{destination}", attempts=0, created_at=NOW,
        kind="discharge", care_setting="mental_health", source="mh",
        body=EVENT.model_dump_json(exclude_none=True) if body is None else body,
    )  # fmt: skip


def dest(name: str) -> Any:
    found = CONFIG.destination(name)
    assert found is not None
    return found


async def no_original(_event_id: str) -> CareEvent | None:
    return None


ISSUED: list[IssuedLink] = []


async def issue(links: Sequence[IssuedLink]) -> None:
    ISSUED.extend(links)


def http_sender(name: str, fake: FakeHttp) -> Sender:
    if name == "team":
        return WebhookSender(dest(name), fake.post, clock=NOW.timestamp)
    if name == "ehr":
        return FhirSender(dest(name), fake.post)
    return NotificationSender(
        dest(name), fake.post, DEFAULT_RULES, no_original, lambda: NOW, issue=issue
    )


def test_the_webhook_sends_the_stored_json_byte_for_byte_signed() -> None:
    stored = delivery("team")
    rendered = render_webhook(stored, dest("team"), 1_780_000_000)
    assert rendered.body == stored.body.encode()
    assert rendered.to == "https://team.example/x"
    assert rendered.headers["Idempotency-Key"] == stored.idempotency_key
    assert rendered.headers[SIGNATURE_HEADER] == sign(HOOK_SECRET, 1_780_000_000, rendered.body)


def test_amqp_routes_by_kind_care_setting_and_source() -> None:
    rendered = render_amqp(delivery("bus"))
    assert rendered.to == "discharge.mental_health.mh"
    assert rendered.headers["X-Carebridge-Event-Kind"] == "discharge"


def test_mllp_renders_the_msh_10_of_the_idempotency_key() -> None:
    rendered = render_mllp(delivery("pas"), dest("pas"), NOW)
    assert f"|{mllp_control_id(f'{EVENT.event_id}.pas')}|".encode() in rendered.body


async def test_the_console_shows_what_the_mllp_sender_sends() -> None:
    link = FakeLink(acking(b"MSA|AA|x\r"))
    await MllpSender(dest("pas"), link, clock=lambda: NOW).send(delivery("pas"))
    shown = render_for(CONFIG, "pas", delivery("pas").body, now=NOW)
    assert shown.splitlines() == [s.decode() for s in link.sent[0].split(b"\r") if s]


async def test_the_console_shows_what_the_notification_sender_sends_bar_the_link() -> None:
    fake = FakeHttp(answering(HttpResponse(200, b"")))
    await http_sender("notify", fake).send(delivery("notify"))
    posted = json.loads(fake.requests[0].body)["text"]
    shown = render_for(CONFIG, "notify", delivery("notify").body, now=NOW)
    tokens = re.findall(r"#([A-Za-z0-9_-]{43})$", posted, re.MULTILINE)
    assert len(tokens) == 2  # acknowledge, follow-up done
    for token in tokens:
        posted = posted.replace(token, "token-not-shown")
        assert token not in shown
    [expiry] = [line for line in posted.splitlines() if line.startswith("Links work once")]
    assert expiry == "Links work once each, until Wed 15 Jul 2026 11:00 BST"  # set when sent
    assert shown.endswith(posted.replace(expiry + "\n", ""))


@pytest.mark.parametrize("name", ["pas", "ehr", "notify"])
async def test_an_event_that_cannot_be_rendered_is_permanent_and_nothing_is_sent(
    name: str,
) -> None:
    fake, link = FakeHttp(), FakeLink(acking(b""))
    sender: Sender = (
        MllpSender(dest(name), link, clock=lambda: NOW)
        if name == "pas"
        else http_sender(name, fake)
    )
    result = await sender.send(delivery(name, body='{"kind": "discharge"}'))
    assert result.outcome == "permanent"
    assert "not a valid care event" in (result.detail or "")
    assert (fake.requests, link.sent) == ([], [])


@pytest.mark.parametrize("name", ["team", "ehr", "notify"])
async def test_every_http_sender_honours_retry_after(name: str) -> None:
    fake = FakeHttp(answering(HttpResponse(503, b"busy", {"Retry-After": "120"})))
    result = await http_sender(name, fake).send(delivery(name))
    assert (result.outcome, result.status_code, result.retry_after) == ("transient", 503, 120)


@pytest.mark.parametrize("name", ["team", "notify"])
async def test_every_signed_sender_signs_the_same_way(name: str) -> None:
    fake = FakeHttp(answering(HttpResponse(200, b"")))
    assert (await http_sender(name, fake).send(delivery(name))).outcome == "delivered"
    [request] = fake.requests
    stamp = int(NOW.timestamp())
    assert request.headers[SIGNATURE_HEADER] == sign(HOOK_SECRET, stamp, request.body)


async def test_amqp_publishes_the_rendered_event_and_a_failed_publish_is_transient() -> None:
    subscriber = "subscriber.discharges"
    broker = MemoryBroker(topology=Topology(
        exchanges=[ExchangeSpec("carebridge.events", "topic")],
        queues=[QueueSpec(subscriber)],
        bindings=[BindingSpec("carebridge.events", subscriber, "discharge.#")],
    ))  # fmt: skip

    async def publish(exchange: str, routing_key: str, body: bytes, headers: Mapping[str, str],
                      message_id: str, mandatory: bool) -> None:  # fmt: skip
        # As engine/app.py wires AMQP destinations to the publishing broker.
        await broker.publish(exchange, routing_key, body, headers=dict(headers),
                             message_id=message_id, content_type="application/json",
                             mandatory=mandatory)  # fmt: skip

    sender = AmqpSender(dest("bus"), publish)
    assert (await sender.send(delivery("bus"))).outcome == "delivered"
    [message] = broker.ready(subscriber)
    assert (message.exchange, message.routing_key, message.body, message.message_id) == (
        "carebridge.events", "discharge.mental_health.mh", delivery("bus").body.encode(),
        delivery("bus").idempotency_key)  # fmt: skip
    await broker.close()  # the broker is gone: retried later, never lost
    result = await sender.send(delivery("bus"))
    assert (result.outcome, result.detail) == (
        "transient", "BrokerUnavailable: not connected to RabbitMQ")  # fmt: skip


async def test_each_link_has_a_token_of_its_own_stored_hashed_and_expiring() -> None:
    ISSUED.clear()
    fake = FakeHttp(answering(HttpResponse(200, b"")))
    for _attempt in range(2):  # a retry sends fresh tokens
        await http_sender("notify", fake).send(delivery("notify"))
    sent = [json.loads(r.body)["notification"] for r in fake.requests]
    tokens = [(n["ack_url"].split("#")[1], n["done_url"].split("#")[1]) for n in sent]
    assert len({t for pair in tokens for t in pair}) == 4
    event_id = sent[0]["references"]["event_id"]
    base = f"https://cb.example/notifications/notify/{event_id}"
    assert sent[0]["ack_url"] == f"{base}/ack#{tokens[0][0]}"
    assert sent[0]["done_url"] == f"{base}/done#{tokens[0][1]}"
    assert sent[0]["links_expire_at"] == "2026-07-15T10:00:00Z"  # 14 days by default
    digest = {t: hashlib.sha256(t.encode()).hexdigest() for pair in tokens for t in pair}
    assert [(i.action, i.token_sha256, i.event_id) for i in ISSUED] == [
        (a, digest[t], event_id)
        for pair in tokens
        for a, t in zip(("ack", "done"), pair, strict=True)
    ]
    assert {i.expires_at for i in ISSUED} == {NOW + timedelta(days=14)}
    assert not any(t in repr(ISSUED) for t in digest)
