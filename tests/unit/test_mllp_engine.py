"""The engine's MLLP policy: when to answer AA, AE, AR; how an MLLP destination's ACK counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from adapters.errors import DestinationTimeout
from engine.config import MllpAckPolicy, MllpDestination
from engine.delivery.mllp import MllpSender, mllp_control_id
from engine.mllp_gateway import MllpGateway
from engine.store import ClaimedDelivery
from mappings.hl7v2.ack import build_ack, parse_ack
from mappings.hl7v2.inbound import map_hl7v2
from mappings.profile import FeedProfile
from tests.adt_factory import adt, patients
from tests.fakes import FakeLink, acking
from tests.memory_broker import (
    MemoryBroker,
    gateway_publish,
    inbound_broker,
    inbound_queue,
    kept,
)

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
[PATIENT] = patients(1)
GOOD = adt("A03", PATIENT, "CTRL-1", NOW)
BAD = b"MSH|^~\\&|EPR|RXT|CB|NHS|20260701||ADT^A17^ADT_A17|CTRL-2|P|2.4\rEVN|A17\r"


@dataclass(frozen=True)
class Peer:
    host: str = "127.0.0.1"
    client_cn: str | None = None


def gateway(broker: MemoryBroker, allowed: frozenset[str] | None = None) -> MllpGateway:
    return MllpGateway("mh", FeedProfile(feed="mh"), gateway_publish(broker), allowed,
                       clock=lambda: NOW)  # fmt: skip


async def test_aa_only_after_the_broker_took_the_message() -> None:
    broker = inbound_broker("mh")
    answer = parse_ack(await gateway(broker).handle(GOOD, Peer()))
    assert (answer.code, answer.control_id) == ("AA", "CTRL-1")
    assert kept(broker, "mh") == [GOOD]
    assert broker.ready(inbound_queue("mh"))[0].headers["source"] == "mh"


async def test_content_error_is_ae_with_the_reason_and_still_kept() -> None:
    broker = inbound_broker("mh")
    raw = await gateway(broker).handle(BAD, Peer())
    answer = parse_ack(raw)
    assert answer.code == "AE"
    assert b"ERR|" in raw
    assert "A17" in (answer.text or "")
    assert kept(broker, "mh") == [BAD]  # logged as rejected by intake


async def test_ar_when_the_broker_is_unreachable() -> None:
    broker = inbound_broker("mh")
    await broker.close()
    assert parse_ack(await gateway(broker).handle(GOOD, Peer())).code == "AR"
    assert kept(broker, "mh") == []


async def test_ar_when_the_broker_does_not_confirm_in_time() -> None:
    broker = inbound_broker("mh")
    broker.confirm_timeout = 0  # the confirm never comes within the deadline
    assert parse_ack(await gateway(broker).handle(GOOD, Peer())).code == "AR"
    # The outcome is unknown: the sender resends, and intake's idempotency absorbs a copy.


async def test_ar_when_the_sources_queue_is_missing() -> None:
    broker = inbound_broker("acute")  # no queue bound for "mh"
    assert parse_ack(await gateway(broker).handle(GOOD, Peer())).code == "AR"


async def test_a_sender_not_allowed_for_the_source_gets_ar_and_nothing_is_kept() -> None:
    broker = inbound_broker("mh")
    answer = await gateway(broker, frozenset({"mh-epr"})).handle(GOOD, Peer(client_cn="intruder"))
    assert parse_ack(answer).code == "AR"
    assert kept(broker, "mh") == []
    allowed = await gateway(broker, frozenset({"mh-epr"})).handle(GOOD, Peer(client_cn="mh-epr"))
    assert parse_ack(allowed).code == "AA"


async def test_enhanced_mode_never_means_no_answer() -> None:
    never = GOOD.replace(b"|||||GBR|", b"|||NE|NE|GBR|", 1)
    assert await gateway(inbound_broker("mh")).handle(never, Peer()) == b""


def link_answering(answer: bytes | Exception) -> FakeLink:
    return FakeLink(acking(answer))


DEST = MllpDestination(type="mllp", name="pas", host="127.0.0.1", port=2575)
DELIVERY = ClaimedDelivery(
    id=1, event_id="ev-1", destination="pas", patient_key="nhs:x", idempotency_key="ev-1.pas",
    attempts=0, created_at=NOW, kind="discharge", care_setting="mental_health", source="mh",
    body=map_hl7v2(GOOD, FeedProfile(feed="mh")).model_dump_json(exclude_none=True),
)  # fmt: skip
CONTROL = mllp_control_id("ev-1.pas")


def ack(code: str, control_id: str = CONTROL) -> bytes:
    original = f"MSH|^~\\&|R|R|CB|CB|20260701||ADT^A03^ADT_A03|{control_id}|P|2.4\r".encode()
    return build_ack(original, code, now=NOW, control_id="R1")  # type: ignore[arg-type]


def test_control_id_is_stable_and_fits_itk() -> None:
    assert mllp_control_id("ev-1.pas") == CONTROL
    assert len(CONTROL) <= 20


@pytest.mark.parametrize(
    ("code", "outcome"),
    [("AA", "delivered"), ("CA", "delivered"), ("AE", "permanent"), ("AR", "transient"),
     ("CR", "transient")],
)  # fmt: skip
async def test_ack_codes_are_classified(code: str, outcome: str) -> None:
    link = link_answering(ack(code))
    result = await MllpSender(DEST, link, clock=lambda: NOW).send(DELIVERY)
    assert result.outcome == outcome
    assert f"|{CONTROL}|".encode() in link.sent[0]
    assert b"ADT^A03^ADT_A03" in link.sent[0]


async def test_every_attempt_carries_the_same_msh_10() -> None:
    link = link_answering(ack("AR"))
    sender = MllpSender(DEST, link, clock=lambda: NOW)
    await sender.send(DELIVERY)
    await sender.send(DELIVERY)
    assert link.sent[0] == link.sent[1]


async def test_an_ack_for_another_message_drops_the_link_and_retries() -> None:
    link = link_answering(ack("AA", control_id="SOMETHING-ELSE"))
    result = await MllpSender(DEST, link, clock=lambda: NOW).send(DELIVERY)
    assert result.outcome == "transient"
    assert link.closed == 1


async def test_silence_follows_the_destinations_policy() -> None:
    strict = DEST.model_copy(update={"ack": MllpAckPolicy(silence="permanent")})
    link = link_answering(DestinationTimeout("no answer"))
    assert (await MllpSender(DEST, link).send(DELIVERY)).outcome == "transient"
    assert (await MllpSender(strict, link).send(DELIVERY)).outcome == "permanent"
