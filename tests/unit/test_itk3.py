"""ITK3 over MESH, pure: the discharge as the ITK3 message a GP system takes (golden XML,
workflows, ids stable across resends), and ITK3 responses read as the specification says."""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mappings.clinical.follow_up import DEFAULT_RULES
from mappings.errors import MappingError
from mappings.hl7v2.inbound import map_hl7v2
from mappings.itk3 import (
    Addressing,
    XmlError,
    read_response,
    render_discharge_message,
    workflow_for,
)
from mappings.model import CareEvent, CareSetting
from mappings.profile import FeedProfile
from tests.golden_util import UPDATE_ENV
from tests.mesh.gp import F, ack_xml, fhir_text, fhir_value

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "hl7v2"
GOLDEN = TESTS / "golden" / "itk3"
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}
NOW = datetime(2026, 2, 2, 10, 40, tzinfo=UTC)
ADDRESSING = Addressing(sender_ods="RXT", sender_mailbox="X26RXT001")
KEY = "ev-1.gp-mesh"


def fixture(name: str) -> CareEvent:
    return map_hl7v2((FIXTURES / name).read_bytes(), PROFILES[name.split("_", 1)[0]])


DISCHARGE = fixture("mh_a03_discharge.hl7")
WITHDRAWAL = fixture("mh_a13_cancel_discharge.hl7").model_copy(
    update={"corrects_event_id": DISCHARGE.event_id}
)


def render(event: CareEvent = DISCHARGE, key: str = KEY, **kw: object) -> bytes:
    return render_discharge_message(
        event,
        key=key,
        addressing=ADDRESSING,
        now=NOW,
        rules=DEFAULT_RULES,
        **kw,  # type: ignore[arg-type]
    ).body


def assert_xml_golden(body: bytes, path: Path) -> None:
    text = body.decode()
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}; {UPDATE_ENV}=1"


def test_a_mental_health_discharge_renders_as_reviewed() -> None:
    assert_xml_golden(render(), GOLDEN / "mh_a03_discharge.xml")


def test_a_withdrawal_renders_as_reviewed() -> None:
    assert_xml_golden(render(WITHDRAWAL, subject=DISCHARGE), GOLDEN / "mh_a13_withdrawal.xml")


def test_the_message_header_asks_for_both_acknowledgements_on_the_mh_workflow() -> None:
    message = render_discharge_message(
        DISCHARGE, key=KEY, addressing=ADDRESSING, now=NOW, rules=DEFAULT_RULES
    )
    assert message.workflow.workflow_id == "TOC_FHIR_MH_DISCH"
    assert message.workflow.ack_workflow_id == "TOC_FHIR_MH_DISCH_ACK"
    bundle = ET.fromstring(message.body)
    header = bundle.find(f"{F}entry/{F}resource/{F}MessageHeader")
    assert header is not None
    assert fhir_value(header, "id") == message.header_id
    assert fhir_value(header, "event/code") == "ITK004D"
    flags = {
        e.get("url"): fhir_value(e, "valueBoolean")
        for e in header.findall(f"{F}extension/{F}extension")
    }
    assert flags["BusAckRequested"] == "true"
    assert flags["InfAckRequested"] == "true"
    assert fhir_value(header, "source/endpoint") == "X26RXT001"
    assert "SYNTHETIC" not in message.subject  # no patient data in the MESH subject


def test_an_acute_discharge_goes_on_the_inpatient_workflow() -> None:
    assert DISCHARGE.stay is not None
    acute = DISCHARGE.model_copy(
        update={"stay": DISCHARGE.stay.model_copy(update={"care_setting": CareSetting.ACUTE})}
    )
    workflow = workflow_for(acute)
    assert workflow is not None
    assert (workflow.workflow_id, workflow.event_code) == ("TOC_FHIR_IP_DISCH", "ITK003D")
    assert b"CareConnect-ITK-EDIS-Composition-1" in render(acute)


def test_a_resend_is_the_same_message_and_another_destination_another() -> None:
    assert render() == render()
    assert render(key="ev-1.other") != render()


def test_the_document_carries_the_patient_and_the_discharge() -> None:
    bundle = ET.fromstring(render())
    patient = bundle.find(f".//{F}Patient")
    assert patient is not None
    assert fhir_value(patient, "identifier/value") == DISCHARGE.patient.nhs_number
    encounter = bundle.find(f".//{F}Encounter")
    assert encounter is not None
    assert fhir_value(encounter, "period/end") == "2026-02-02T10:30:00+00:00"
    assert fhir_value(encounter, "hospitalization/dischargeDisposition/coding/code") == "19"
    text = fhir_text(bundle)
    assert "Follow-up (72h)" in text
    assert "Legal status at discharge" in text


def test_without_an_nhs_number_nothing_is_rendered() -> None:
    patient = DISCHARGE.patient.model_copy(update={"identifiers": ()})
    with pytest.raises(MappingError, match="NHS number"):
        render(DISCHARGE.model_copy(update={"patient": patient}))


def test_only_discharges_and_their_withdrawals_have_a_workflow() -> None:
    assert workflow_for(fixture("mh_a01_admission.hl7")) is None
    assert workflow_for(fixture("mh_a21_leave_start.hl7")) is None
    assert workflow_for(WITHDRAWAL, DISCHARGE) is not None


@pytest.mark.parametrize(
    ("code", "level", "positive"),
    [("20013", "infrastructure", True), ("30001", "business", True),
     ("30002", "business", False), ("20007", "infrastructure", True),
     ("20008", "infrastructure", True), ("20009", "infrastructure", False)],
)  # fmt: skip
def test_responses_are_read_by_their_itk3_code(code: str, level: str, positive: bool) -> None:
    response = read_response(ack_xml("hdr-1", code))
    assert (response.responds_to, response.level, response.code) == ("hdr-1", level, code)
    assert response.positive is positive


def test_an_infrastructure_ok_without_an_outcome_is_positive() -> None:
    response = read_response(ack_xml("hdr-1", None))
    assert (response.level, response.positive, response.code) == ("infrastructure", True, "")


@pytest.mark.parametrize(
    "body",
    [b"not xml", b"<Bundle xmlns='http://hl7.org/fhir'><type value='message'/></Bundle>",
     b"<!DOCTYPE x [<!ENTITY a 'b'>]><Bundle/>", render()],
)  # fmt: skip
def test_what_is_not_an_itk3_response_is_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(XmlError):
        read_response(body)


def test_mangled_responses_are_refused_as_xml_errors_only() -> None:
    import random

    base = ack_xml("hdr-1", "30001")
    rng = random.Random(1)
    for _ in range(2000):
        mangled = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(mangled))
            if rng.random() < 0.5:
                del mangled[at : at + rng.randint(1, 20)]
            else:
                mangled[at] = rng.randrange(256)
        with contextlib.suppress(XmlError):  # anything else raised fails the test
            read_response(bytes(mangled))
