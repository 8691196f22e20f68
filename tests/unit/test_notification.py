import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from mappings.clinical.follow_up import DEFAULT_RULES, follow_up_for
from mappings.clinical.notification import (
    FOLLOW_UP_SYSTEM,
    Links,
    Notification,
    is_notifiable,
    notification_id,
    render_notification,
)
from mappings.codes import (
    DISCHARGE_DESTINATION_ENGLAND,
    HL7_PATIENT_CLASS,
    LEGAL_STATUS_ENGLAND,
    RISK_FLAG,
)
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import (
    CareEvent,
    Coding,
    EventKind,
    Instant,
    LegalStatus,
    LegalStatusContext,
    Precision,
)
from mappings.profile import FeedProfile
from tests.golden_util import UPDATE_ENV, assert_golden

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "hl7v2"
GOLDEN = TESTS / "golden" / "notification"
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}
NOW = datetime(2026, 2, 2, 10, 40, tzinfo=UTC)
LINKS = "https://carebridge.example.nhs.uk/notifications/clinicians/"
EXAMPLE_TOKEN = "EXAMPLE-token-43-characters-long-0123456789"
RECIPIENT = "North Community Mental Health Team (RXT)"


def fixture(name: str) -> CareEvent:
    return map_hl7v2((FIXTURES / name).read_bytes(), PROFILES[name.split("_", 1)[0]])


DISCHARGE = fixture("mh_a03_discharge.hl7")
# the engine links a cancel to the event it cancels at intake
WITHDRAWAL = fixture("mh_a13_cancel_discharge.hl7").model_copy(
    update={"corrects_event_id": DISCHARGE.event_id}
)


def render(event: CareEvent, now: datetime = NOW) -> Notification:
    follow_up = follow_up_for(event, DEFAULT_RULES)
    if event.kind is EventKind.CANCEL_DISCHARGE:
        follow_up = follow_up_for(DISCHARGE, DEFAULT_RULES)  # the follow-up being withdrawn
    tracked = event.corrects_event_id or event.event_id
    links = Links(
        ack=f"{LINKS}{tracked}/ack#{EXAMPLE_TOKEN}",
        done=f"{LINKS}{tracked}/done#{EXAMPLE_TOKEN}"
        if event.kind is EventKind.DISCHARGE and follow_up
        else None,
        expire_at=now + timedelta(days=14),
    )
    return render_notification(event, follow_up, recipient=RECIPIENT, links=links, now=now)


def changed(event: CareEvent = DISCHARGE, **stay: Any) -> CareEvent:
    assert event.stay is not None
    return event.model_copy(update={"stay": event.stay.model_copy(update=stay)})


def hidden(event: CareEvent) -> CareEvent:
    patient = event.patient.model_copy(update={"location_hidden": True})
    return event.model_copy(update={"patient": patient})


def assert_text_golden(text: str, path: Path) -> None:
    """The text as a reviewed plain-text file (readable in a diff), rewritten like the JSON."""
    if os.environ.get(UPDATE_ENV) == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def assert_valid_fhir(bundle: dict[str, Any]) -> None:
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
    assert orjson.loads(orjson.dumps(bundle)) == bundle


def resource(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]
    return found


# --- goldens ----------------------------------------------------------------------------------


def test_a_discharge_renders_as_reviewed() -> None:
    notification = render(DISCHARGE)
    assert notification.kind == "discharge"
    assert_text_golden(notification.text, GOLDEN / "mh_a03_discharge.txt")
    assert_golden(
        {"payload": notification.payload, "fhir": notification.fhir},
        GOLDEN / "mh_a03_discharge.json",
    )


def test_a_withdrawal_renders_as_reviewed() -> None:
    notification = render(WITHDRAWAL)
    assert notification.kind == "withdrawal"
    assert_text_golden(notification.text, GOLDEN / "mh_a13_withdrawal.txt")
    assert_golden(
        {"payload": notification.payload, "fhir": notification.fhir},
        GOLDEN / "mh_a13_withdrawal.json",
    )


# --- the text a clinician acts on --------------------------------------------------------------


def test_the_discharge_text_says_who_where_when_and_by_when_to_follow_up() -> None:
    text = render(DISCHARGE).text
    assert (
        "SYNTHETIC, ALPHA TESTCASE, NHS number 943 476 5919 (NOT A REAL PATIENT'S NUMBER: outside"
        " the ranges issued to patients; confirm who this is before acting), born 1 Jan 1980"
    ) in text
    assert "From: ward WARD9, bed BED1 (site RXT01), provider RXT" in text
    assert "Discharged: Mon 2 Feb 2026 10:30 GMT" in text
    assert "To: Usual place of residence (19)" in text
    assert "Legal status at discharge: not recorded" in text
    assert "Responsible clinician: DR CLINICIAN RESPONSIBLE (C1234567)" in text
    assert "follow-up due by Thu 5 Feb 2026 10:30 GMT" in text
    assert "Risk flags: none recorded" in text
    assert f"Acknowledge: {LINKS}{DISCHARGE.event_id}/ack#{EXAMPLE_TOKEN}" in text
    assert f"Record follow-up done: {LINKS}{DISCHARGE.event_id}/done#{EXAMPLE_TOKEN}" in text
    assert "Links work once each, until Mon 16 Feb 2026 10:40 GMT" in text


def test_a_missing_legal_status_is_never_reported_as_informal() -> None:
    assert DISCHARGE.stay is not None
    assert DISCHARGE.stay.legal_status == ()
    notification = render(DISCHARGE)
    assert "informal" not in notification.text.lower()
    assert notification.payload["stay"]["legal_status_at_discharge"] is None


def test_legal_status_risk_and_s117_are_carried_from_the_feed() -> None:
    notification = render(fixture("mhlocal_a03_discharge.hl7"))
    assert "Legal status at discharge: Detained: section 3 (03)" in notification.text
    assert "Section 117 aftercare: likely (detained under section 3): confirm" in notification.text
    assert "Risk flags: High risk" in notification.text
    assert "Follow-up (48h-high-risk): follow-up due by Tue 3 Mar 2026 16:30 GMT" in (
        notification.text
    )
    task = resource(notification.fhir, "Task")
    assert task["code"] == {"text": "Follow up within 48 hours of discharge"}
    assert task["priority"] == "urgent"


def test_an_admission_status_is_not_passed_off_as_the_discharge_status() -> None:
    s2 = LegalStatus(
        code=Coding(system=LEGAL_STATUS_ENGLAND, code="02", display="Detained: section 2"),
        context=LegalStatusContext.ADMISSION,
    )
    text = render(changed(legal_status=(s2,))).text
    assert "Legal status at discharge: not recorded (on admission: Detained: section 2 (02))" in (
        text
    )


def test_summer_times_are_shown_in_bst() -> None:
    left = Instant(
        utc=datetime(2026, 7, 14, 13, 5, tzinfo=UTC), original="x", precision=Precision.SECOND
    )
    text = render(changed(discharged_at=left), now=datetime(2026, 7, 14, 14, tzinfo=UTC)).text
    assert "Discharged: Tue 14 Jul 2026 14:05 BST" in text
    assert "follow-up due by Fri 17 Jul 2026 14:05 BST" in text


def test_an_excluded_destination_says_why_there_is_no_follow_up() -> None:
    ward = Coding(system=DISCHARGE_DESTINATION_ENGLAND, code="53")
    notification = render(changed(discharge_destination=ward))
    assert (
        "Follow-up: no clock started by Carebridge's rules (discharged to NHS other provider: "
        "mental illness or learning disability ward (53): still an inpatient" in notification.text
    )
    assert notification.payload["follow_up"]["status"] == "none"
    assert [e["resource"]["resourceType"] for e in notification.fhir["entry"]] == ["Communication"]


def test_a_backdated_discharge_is_flagged_overdue() -> None:
    notification = render(DISCHARGE, now=datetime(2026, 2, 10, 9, 0, tzinfo=UTC))
    assert "follow-up due by Thu 5 Feb 2026 10:30 GMT (OVERDUE: arrange now)" in notification.text
    assert notification.payload["follow_up"]["overdue"] is True
    assert resource(notification.fhir, "Task")["priority"] == "asap"


def test_without_an_nhs_number_the_local_identifier_is_used() -> None:
    event = fixture("mh_a03_escapes_latin1.hl7")  # NSTS03, MRN only
    notification = render(event)
    assert (
        "no verified NHS number (status 03: Trace required), local id RXT7654321 (RXT)"
        in notification.text
    )
    subject = resource(notification.fhir, "Communication")["subject"]
    assert subject["identifier"]["value"] == "RXT7654321"
    assert_valid_fhir(notification.fhir)


# --- FHIR ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [DISCHARGE, WITHDRAWAL, fixture("mhlocal_a03_discharge.hl7")],
    ids=["discharge", "withdrawal", "high-risk"],
)
def test_the_communication_and_task_validate_against_r4b(event: CareEvent) -> None:
    assert_valid_fhir(render(event).fhir)


def test_the_discharge_bundle_holds_the_communication_and_a_requested_task() -> None:
    notification = render(DISCHARGE)
    bundle = notification.fhir
    assert bundle["type"] == "collection"
    communication = resource(bundle, "Communication")
    assert communication["status"] == "completed"
    assert communication["payload"] == [{"contentString": notification.text}]
    assert communication["subject"]["identifier"] == {
        "system": "https://carebridge.nhs.uk/Id/nhs-number-not-real",  # outside issued ranges
        "value": "9434765919",
    }
    assert communication["about"][0]["identifier"]["value"] == "SPELL-0001"
    assert communication["sent"] == "2026-02-02T10:40:00Z"
    assert communication["recipient"] == [{"display": RECIPIENT}]
    task = resource(bundle, "Task")
    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["code"] == {"text": "Follow up within 72 hours of discharge"}
    assert task["executionPeriod"]["end"] == "2026-02-05T10:30:00Z"
    assert task["for"]["identifier"]["value"] == "9434765919"
    assert task["focus"] == {"reference": f"urn:uuid:{communication['id']}"}


def test_a_withdrawal_cancels_the_very_task_the_discharge_created() -> None:
    original = resource(render(DISCHARGE).fhir, "Task")
    withdrawal = render(WITHDRAWAL)
    cancelled = resource(withdrawal.fhir, "Task")
    assert cancelled["status"] == "cancelled"
    assert cancelled["id"] == original["id"]
    assert cancelled["identifier"] == original["identifier"]
    assert cancelled["identifier"] == [
        {"system": FOLLOW_UP_SYSTEM, "value": notification_id(DISCHARGE.event_id)}
    ]
    assert withdrawal.text.startswith(
        f"WITHDRAWN: the discharge notified as {notification_id(DISCHARGE.event_id)} was cancelled"
    )
    assert withdrawal.payload["references"]["corrects_notification_id"] == notification_id(
        DISCHARGE.event_id
    )


def test_rendering_twice_gives_identical_output() -> None:
    for event in (DISCHARGE, WITHDRAWAL):
        first, second = render(event), render(event)
        assert first == second
        assert orjson.dumps(first.fhir) == orjson.dumps(second.fhir)


def test_notification_ids_are_stable_and_per_event() -> None:
    assert notification_id(DISCHARGE.event_id) == notification_id(DISCHARGE.event_id)
    assert notification_id(DISCHARGE.event_id) != notification_id(WITHDRAWAL.event_id)
    assert render(DISCHARGE).notification_id == notification_id(DISCHARGE.event_id)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_notification(
            DISCHARGE, None, recipient=RECIPIENT, links=None, now=datetime(2026, 2, 2)
        )


# --- what is notifiable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["mh_a21_leave_start.hl7", "mh_a22_leave_end.hl7", "mh_a01_admission.hl7"]
)
def test_leave_and_admission_are_not_notifiable(name: str) -> None:
    event = fixture(name)
    assert not is_notifiable(event)
    with pytest.raises(ValueError, match="not notifiable"):
        render(event)


@pytest.mark.parametrize(
    "kind", [EventKind.LEAVE_START, EventKind.LEAVE_END, EventKind.CANCEL_LEAVE_START]
)
def test_leave_is_never_notifiable_whatever_it_carries(kind: EventKind) -> None:
    assert not is_notifiable(DISCHARGE.model_copy(update={"kind": kind}))


@pytest.mark.parametrize("code", ["O", "E"])
def test_an_outpatient_or_ed_a03_is_not_notifiable(code: str) -> None:
    event = changed(patient_class=Coding(system=HL7_PATIENT_CLASS, code=code))
    assert not is_notifiable(event)


def test_a_discharge_and_its_withdrawal_are_notifiable() -> None:
    assert is_notifiable(DISCHARGE)
    assert is_notifiable(changed(patient_class=None))  # class unknown: the safer reading
    assert is_notifiable(WITHDRAWAL)


def test_a_ward_move_is_not_notifiable_but_a_move_to_another_site_is() -> None:
    transfer = fixture("mh_a02_transfer.hl7")  # WARD7 -> WARD9 on site RXT01
    assert not is_notifiable(transfer)
    assert transfer.location_to is not None
    other_site = transfer.location_to.model_copy(update={"facility": "RXT02"})
    moved = transfer.model_copy(update={"location_to": other_site})
    assert is_notifiable(moved)
    notification = render(moved)
    assert notification.kind == "transfer"
    assert "To: ward WARD9, bed BED1 (site RXT02)" in notification.text
    assert_valid_fhir(notification.fhir)
    back = fixture("mh_a12_cancel_transfer.hl7")
    assert not is_notifiable(back)
    assert is_notifiable(back.model_copy(update={"location_from": other_site}))


# --- location hiding ---------------------------------------------------------------------------


def test_a_hidden_location_never_shows_an_address_or_gp() -> None:
    event = hidden(DISCHARGE)  # the engine has stripped them already; here they are still there
    assert event.patient.addresses
    notification = render(event)
    everything = notification.text + orjson.dumps(notification.payload).decode()
    everything += orjson.dumps(notification.fhir).decode()
    for secret in ("Example Street", "Testville", "Testtown", "TE1 1ST", "Y99901", "G9999998"):
        assert secret not in everything
    assert "Location hidden (ZU8): contact details and GP withheld" in notification.text
    assert notification.payload["patient"]["location_hidden"] is True


def test_no_address_is_ever_sent_even_when_not_hidden() -> None:
    notification = render(DISCHARGE)
    everything = notification.text + orjson.dumps(notification.payload).decode()
    assert "Example Street" not in everything
    assert "TE1 1ST" not in everything


def test_local_identifiers_and_flags_keep_their_codes_in_the_payload() -> None:
    payload = render(fixture("mhlocal_a03_discharge.hl7")).payload
    assert payload["stay"]["risk_flags"] == [
        {"system": RISK_FLAG, "code": "high-risk", "display": "High risk"}
    ]
    assert payload["patient"]["local_identifiers"] == [
        {"value": "RXT2345678", "system": "RXT", "assigner_ods": "RXT"}
    ]
    assert payload["patient"]["nhs_number"] == "4010232137"
