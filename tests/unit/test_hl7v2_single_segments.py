"""One segment where the ADT structure allows one (issue 13 point 4): a second MSH, EVN, PID,
PD1, PV1, PV2 or MRG is refused with a reason naming it, never "first one wins"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from engine.mllp_gateway import MllpGateway
from mappings.errors import MappingError
from mappings.hl7v2.ack import parse_ack
from mappings.hl7v2.inbound import map_hl7v2
from mappings.profile import FeedProfile
from tests.memory_broker import gateway_publish, inbound_broker, kept

MH = FeedProfile(feed="mh-trust")
NOW = datetime(2026, 2, 2, 11, 0, tzinfo=UTC)
MSH = "MSH|^~\\&|RIO|RXT|ROUTE|ROUTE|20260202104500||ADT^{t}^ADT_A03|DUP-1|P|2.4"
EVN = "EVN|{t}|20260202104500||||20260202103000"
PID = "PID|1||9990000018^^^NHS^NH||SYNTHETIC^{given}||19800101|2"
PD1 = "PD1|||EXAMPLE SURGERY^^Y99901"
PV1 = "PV1|1|I|RXT^WARD{w}^BED1^RXT01|||||||710||||||||||SPELL-1" + "|" * 25 + "20260202103000"
PV2 = "PV2|||||||||||||||||||||||||||||||||||||||||||||20260209"
MRG = "MRG|RXT7654321^^^RXT^MR"


def message(trigger: str, *segments: str) -> str:
    lines = [MSH.format(t=trigger), EVN.format(t=trigger), *segments]
    return "\r".join(lines) + "\r"


def refused(raw: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        map_hl7v2(raw, MH)
    return caught.value


PATIENT_A = PID.format(given="ALPHA")
PATIENT_B = PID.format(given="BETA")


@pytest.mark.parametrize(
    ("trigger", "segments", "repeated"),
    [
        ("A03", (PATIENT_A, PATIENT_B, PV1.format(w=1)), "PID"),
        ("A03", (PATIENT_A, PV1.format(w=1), PV1.format(w=2)), "PV1"),
        ("A03", (PATIENT_A, PD1, PD1, PV1.format(w=1)), "PD1"),
        ("A03", (PATIENT_A, PV1.format(w=1), PV2, PV2), "PV2"),
        ("A03", (EVN.format(t="A03"), PATIENT_A, PV1.format(w=1)), "EVN"),
        ("A01", (PATIENT_A, PV1.format(w=1), PV1.format(w=2)), "PV1"),
        ("A02", (PATIENT_A, PATIENT_B, PV1.format(w=1)), "PID"),
        ("A21", (PATIENT_A, PV1.format(w=1), PV1.format(w=2)), "PV1"),
        ("A08", (PATIENT_A, PATIENT_B, PV1.format(w=1)), "PID"),
        ("A31", (PATIENT_A, PATIENT_B, PV1.format(w=1)), "PID"),
        ("A34", (PATIENT_A, MRG, MRG), "MRG"),
    ],
)
def test_a_repeated_single_segment_is_refused_naming_it(
    trigger: str, segments: tuple[str, ...], repeated: str
) -> None:
    error = refused(message(trigger, *segments))
    assert error.location == repeated
    assert error.code == "100"
    assert f"{repeated} segment repeated" in error.reason
    assert f"ADT^{trigger} allows one {repeated}" in error.reason


def test_the_same_message_with_one_of_each_maps() -> None:
    event = map_hl7v2(message("A03", PATIENT_A, PD1, PV1.format(w=1), PV2), MH)
    assert event.patient.names[0].given == ("ALPHA",)


def test_a_second_msh_is_refused_naming_it() -> None:
    raw = message("A03", PATIENT_A, PV1.format(w=1)) + message("A03", PATIENT_B, PV1.format(w=2))
    error = refused(raw)
    assert error.location == "MSH"
    assert "MSH segment repeated" in error.reason


def test_a_merge_of_two_pairs_keeps_its_own_reason() -> None:
    raw = message("A40", PATIENT_A, MRG, PATIENT_B, MRG)
    error = refused(raw)
    assert error.location == "MRG"
    assert "more than one PID/MRG pair" in error.reason


def test_repeating_segments_stay_allowed() -> None:
    obx = "OBX|1|ST|NOTE||first"
    dg1 = "DG1|1||F20^Schizophrenia^I10"
    event = map_hl7v2(message("A03", PATIENT_A, PV1.format(w=1), obx, obx, dg1, dg1), MH)
    assert event.kind.value == "discharge"


async def test_over_mllp_the_answer_is_ae_with_an_err_naming_the_segment() -> None:
    broker = inbound_broker("mh")
    raw = message("A03", PATIENT_A, PATIENT_B, PV1.format(w=1)).encode()
    gateway = MllpGateway("mh", MH, gateway_publish(broker), None, clock=lambda: NOW)
    ack = await gateway.handle(raw, Peer())
    answer = parse_ack(ack)
    assert answer.code == "AE"
    assert "PID segment repeated" in (answer.text or "")
    err = next(s for s in ack.split(b"\r") if s.startswith(b"ERR|"))
    assert b"PID" in err
    assert b"100" in err
    assert kept(broker, "mh") == [raw]  # kept: intake logs it as rejected with the same reason


@dataclass(frozen=True)
class Peer:
    host: str = "127.0.0.1"
    client_cn: str | None = None
