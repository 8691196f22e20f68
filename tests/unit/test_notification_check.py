"""`engine.notification_check` without a subprocess: why a recipient is chosen, why nothing is
sent (issue 13 point 10)."""

from __future__ import annotations

from pathlib import Path

from engine.config import parse_config
from engine.delivery.notification import why_recipient
from engine.notification_check import check_notification
from mappings.clinical.notification.facts import not_notifiable_reason
from mappings.codes import HL7_PATIENT_CLASS
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import Coding, EventKind
from mappings.profile import FeedProfile

HL7 = Path(__file__).resolve().parents[1] / "fixtures/hl7v2"
DISCHARGE = (HL7 / "mh_a03_discharge.hl7").read_bytes()
CONFIG = parse_config(
    """
sources: [{name: mh, care_setting: mental_health}]
destinations:
  - name: notify
    type: notification
    ack_base_url: https://carebridge.example.nhs.uk
    ack_secret: ${ACK}
    recipients:
      - {name: other-trust, url: "https://a.example/x", providers: [RYY]}
      - {name: our-provider, url: "https://b.example/x", providers: [RXT], sources: [mh]}
routes: [{name: notify-all, to: [notify]}]
""",
    env={"ACK": "a-notification-ack-secret-of-32-characters-or-more"},
)
PROFILE = FeedProfile(feed="mh")


def test_provider_and_source_criteria_are_named_and_the_skipped_recipient_too() -> None:
    event = map_hl7v2(DISCHARGE, PROFILE)
    destination = CONFIG.destinations[0]
    assert why_recipient(destination.recipients, event) == (  # type: ignore[union-attr]
        "provider RXT is in its providers; source mh is in its sources; passed over: "
        "other-trust (provider RXT not in its list)"
    )


def test_the_check_shows_route_recipient_and_rule() -> None:
    checked = check_notification(DISCHARGE, config=CONFIG, source="mh", profile=PROFILE,
                                 configured=True)  # fmt: skip
    assert checked.code == 0
    assert checked.error is None
    assert checked.out[0] == "destination: notify (routes: notify-all)"
    assert checked.out[1] == "recipient: our-provider <https://b.example/x>"
    assert any(line.endswith("set by rule mh-adult-inpatient-72h") for line in checked.out)


def test_an_outpatient_attendance_ending_is_not_notified_and_says_why() -> None:
    outpatient = DISCHARGE.replace(b"PV1|1|I|", b"PV1|1|O|")
    checked = check_notification(outpatient, config=CONFIG, source="mh", profile=PROFILE,
                                 configured=True)  # fmt: skip
    assert checked.code == 0
    assert checked.out[0].startswith("not notified: the discharge ends an attendance")


def test_every_kind_that_is_not_notified_has_a_reason() -> None:
    event = map_hl7v2(DISCHARGE, PROFILE)
    assert not_notifiable_reason(event) == ""
    assert event.stay is not None
    moved = event.model_copy(update={"kind": EventKind.TRANSFER})
    assert "within one site" in not_notifiable_reason(moved)
    er = event.stay.model_copy(
        update={"patient_class": Coding(system=HL7_PATIENT_CLASS, code="E", display="Emergency")}
    )
    assert "patient class Emergency" in not_notifiable_reason(event.model_copy(update={"stay": er}))
    assert not_notifiable_reason(event.model_copy(update={"kind": EventKind.ADMISSION})) == (
        "an admission event is not notified"
    )
