"""`carebridge map FILE --to notification [-c CONFIG --source NAME]` (issue 13 point 10): what
the clinician would receive under a config: the recipient and why, the follow-up and the rule
that set it, the warnings and the text; exit 1 with a one-line reason for a rejected message,
exit 0 with "not notified: <reason>" when nothing would be sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.golden_util import assert_text_golden

REPO = Path(__file__).resolve().parents[2]
CAREBRIDGE = Path(sys.executable).with_name("carebridge")
HL7 = REPO / "tests/fixtures/hl7v2"
FHIR = REPO / "tests/fixtures/fhir"
GOLDEN = REPO / "tests/golden/cli"
SECRET = "a-notification-ack-secret-of-32-characters-or-more"
CONFIG = """
sources:
  - {name: mh-trust, care_setting: mental_health}
  - {name: acute, care_setting: acute}
destinations:
  - name: notify
    type: notification
    ack_base_url: https://carebridge.example.nhs.uk
    ack_secret: ${CB_TEST_ACK_SECRET}
    recipients:
      - {name: gp-y99901, url: "https://gp.example.nhs.uk/y99901", gp_practices: [Y99901]}
      - {name: community-team, url: "https://cmht.example.nhs.uk/in"}
  - {name: events, type: amqp, exchange: carebridge.events}
routes:
  - name: mh-discharges-to-clinicians
    match: {sources: [mh-trust], kinds: [discharge, cancel_discharge, transfer]}
    to: [notify]
  - {name: everything, to: [events]}
transitions:
  provider_areas:
    RXT: {postcode_districts: [TE1, TE2], gp_practices: [Y99901]}
"""


def run(*args: str, secret: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CB_TEST_ACK_SECRET"}
    if secret:
        env["CB_TEST_ACK_SECRET"] = SECRET
    command = [str(CAREBRIDGE), "map", *args, "--to", "notification"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "carebridge.yaml"
    path.write_text(CONFIG)
    return path


def test_a_discharge_names_recipient_why_follow_up_rule_warnings_and_text(config: Path) -> None:
    result = run(str(HL7 / "mh_a03_discharge.hl7"), "-c", str(config), "--source", "mh-trust")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "destination: notify (routes: mh-discharges-to-clinicians)" in out
    assert "recipient: gp-y99901 <https://gp.example.nhs.uk/y99901>" in out
    assert "why this recipient: GP practice Y99901 is in its gp_practices" in out
    assert (
        "follow-up: due Thu 5 Feb 2026 10:30 GMT (2026-02-05T10:30:00Z), standard 72h, set by "
        "rule mh-adult-inpatient-72h" in out
    )
    assert "warnings:\n  - PID-3[1]:" in out
    assert "  DISCHARGE from mental health inpatient care\n" in out
    assert SECRET not in out
    assert "/ack#token-not-shown\n" in out
    assert "/done#token-not-shown\n" in out


def test_a_young_person_out_of_area_goes_to_the_fallback_and_says_why(config: Path) -> None:
    message = HL7 / "mh_a03_transition_out_of_area.hl7"
    result = run(str(message), "-c", str(config), "--source", "mh-trust")
    assert result.returncode == 0, result.stderr
    assert_text_golden(result.stdout, GOLDEN / "map_notification_transition_out_of_area.txt")
    assert (
        "why this recipient: it sets no criteria (the fallback for every patient); passed over: "
        "gp-y99901 (GP practice Y12345 not in its list)" in result.stdout
    )
    assert "set by rule mh-cyp-inpatient-72h" in result.stdout
    assert "  OUT OF AREA: GP practice Y12345" in result.stdout


def test_leave_is_not_notified_with_its_reason(config: Path) -> None:
    result = run(str(HL7 / "mh_a21_leave_start.hl7"), "-c", str(config), "--source", "mh-trust")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "not notified: a leave of absence (or its cancel) is never notified: leave is not a "
        "discharge"
    )


def test_no_route_to_a_notification_destination_is_not_notified(config: Path) -> None:
    result = run(str(HL7 / "mh_a03_discharge.hl7"), "-c", str(config), "--source", "acute")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "not notified: no route sends this discharge from acute (acute) to a notification "
        "destination (notify)"
    )


def test_no_recipient_matching_is_not_notified(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        CONFIG.replace(
            '      - {name: community-team, url: "https://cmht.example.nhs.uk/in"}\n', ""
        )
    )
    result = run(str(HL7 / "mh_a03_transition_out_of_area.hl7"), "-c", str(path), "--source",
                 "mh-trust")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("not notified: notify: no recipient matches")


def test_a_rejected_message_is_exit_1_with_one_line(config: Path) -> None:
    message = FHIR / "rejected/discharge_event_on_leave.json"
    result = run(str(message), "-c", str(config), "--source", "mh-trust")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"carebridge: {message}: rejected: Bundle.entry[0].resource.eventCoding")
    assert "a leave of absence is never a discharge" in line


def test_without_config_it_renders_under_the_default_rules(config: Path) -> None:
    result = run(str(HL7 / "mh_a03_camhs_discharge.hl7"))
    assert result.returncode == 0, result.stderr
    assert "recipient: none chosen" in result.stdout
    assert "set by rule mh-cyp-inpatient-72h" in result.stdout


def test_no_production_secrets_needed(config: Path) -> None:
    result = run(str(HL7 / "mh_a03_discharge.hl7"), "-c", str(config), "--source", "mh-trust",
                 secret=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "CB_TEST_ACK_SECRET is not set" in result.stderr
    assert "recipient: gp-y99901" in result.stdout


def test_config_without_source_is_a_usage_error(config: Path) -> None:
    result = run(str(HL7 / "mh_a03_discharge.hl7"), "-c", str(config))
    assert result.returncode == 2
