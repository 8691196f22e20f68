"""Older feeds (issue 13 point 9): a valid NHS number alone in PID-2 (v2.3 style) is read, with
a warning, unless the profile says the feed's PID-2 is its own id; ITK table 0112 (PV1-36)
codes are a packaged code table to NHS Data Dictionary discharge methods, and by default a code
outside the Dictionary's list reads as ITK words it, never "code 2 (no description)"."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mappings.clinical.follow_up import DEFAULT_RULES, follow_up_for
from mappings.clinical.notification import render_notification
from mappings.code_tables import load_code_labels, load_code_table
from mappings.codes import DISCHARGE_METHOD_ENGLAND, DISCHARGE_METHODS, local_system
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent, IdentifierKind
from mappings.profile import FeedProfile, ProfileError
from tests.golden_util import UPDATE_ENV

TESTS = Path(__file__).resolve().parents[1]
FIXTURE = TESTS / "fixtures" / "hl7v2" / "mh_a03_v23_pid2_itk_disposal.hl7"
GOLDEN = TESTS / "golden" / "notification" / "mh_a03_v23_pid2_itk_disposal.txt"
MH = FeedProfile(feed="mh-trust")
ITK = FeedProfile.from_mapping(
    {"feed": "mh-trust", "code_tables": {"discharge_method": "itk-0112-discharge-method"}}
)
NOW = datetime(2026, 2, 2, 10, 40, tzinfo=UTC)
PID2_WARNING = (
    "PID-2: a valid NHS number without assigning authority (v2.3 style): read as the NHS number"
)


def v23(
    profile: FeedProfile = MH, *, pid: str | None = None, pv1_36: str | None = None
) -> CareEvent:
    raw = FIXTURE.read_text()
    if pid is not None:
        raw = raw.replace("PID|1|9990000018|RXT1234567^^^RXT^MR|", pid)
    if pv1_36 is not None:
        raw = raw.replace("|||||2|19|||", f"|||||{pv1_36}|19|||")
    return map_hl7v2(raw, profile)


def text(event: CareEvent) -> str:
    return render_notification(
        event, follow_up_for(event, DEFAULT_RULES), recipient="North CMHT (RXT)",
        ack_url="https://carebridge.example.nhs.uk/ack/v23", now=NOW,
    ).text  # fmt: skip


# --- PID-2 ----------------------------------------------------------------------------------


def test_a_valid_nhs_number_alone_in_pid_2_is_the_nhs_number_with_a_warning() -> None:
    event = v23()
    assert event.patient.nhs_number == "9990000018"
    assert PID2_WARNING in event.warnings
    [nhs] = [i for i in event.patient.identifiers if i.kind is IdentifierKind.NHS_NUMBER]
    assert nhs.verification is not None  # PID-32 NSTS01 applies to it
    assert [i.value for i in event.patient.identifiers if i.kind is IdentifierKind.LOCAL] == [
        "RXT1234567"
    ]


def test_a_profile_may_say_its_pid_2_is_a_local_id() -> None:
    local = FeedProfile.from_mapping({"feed": "mh-trust", "pid_2": "local"})
    event = v23(local)
    assert event.patient.nhs_number is None
    assert PID2_WARNING not in event.warnings
    with pytest.raises(ProfileError):
        FeedProfile.from_mapping({"feed": "mh-trust", "pid_2": "sometimes"})


@pytest.mark.parametrize("pid2", ["9990000017", "99900000", "EXT123"])
def test_anything_else_alone_in_pid_2_is_not_an_nhs_number(pid2: str) -> None:
    event = v23(pid=f"PID|1|{pid2}|RXT1234567^^^RXT^MR|")
    assert event.patient.nhs_number is None
    assert PID2_WARNING not in event.warnings


def test_a_pid_2_with_its_own_authority_stays_that_authoritys() -> None:
    event = v23(pid="PID|1|9990000018^^^RXT|X1^^^RXT^MR|")
    assert event.patient.nhs_number is None


def test_a_labelled_nhs_number_in_pid_3_wins_over_a_bare_number_in_pid_2() -> None:
    """About one local number in eleven passes modulus 11: a bare PID-2 must never outvote, or
    stand beside, the number PID-3 labels as the NHS number."""
    event = v23(pid="PID|1|9990000018|9990000026^^^NHS^NH|")
    assert event.patient.nhs_number == "9990000026"
    assert PID2_WARNING not in event.warnings
    assert [i.value for i in event.patient.identifiers if i.kind is IdentifierKind.LOCAL] == [
        "9990000018"
    ]
    local_number_passing_mod_11 = v23(pid="PID|1|0004000005|9434765919^^^NHS^NH|")
    assert local_number_passing_mod_11.patient.nhs_number == "9434765919"


def test_pid_2_and_pid_3_with_the_same_number_are_one() -> None:
    event = v23(pid="PID|1|9990000018|9990000018^^^NHS^NH|")
    assert event.patient.nhs_number == "9990000018"


# --- ITK table 0112 -------------------------------------------------------------------------


def test_the_packaged_table_covers_every_itk_code_and_maps_into_the_dictionary() -> None:
    labels = load_code_labels("itk-0112-discharge-method")
    codes = load_code_table("itk-0112-discharge-method")
    assert sorted(labels, key=int) == [str(n) for n in range(1, 15)]
    assert labels["2"] == "GP Follow Up"
    assert set(codes) <= set(labels)
    assert set(codes.values()) <= set(DISCHARGE_METHODS)
    assert (codes["10"], codes["12"], codes["13"], codes["5"]) == ("4", "6", "6", "5")


def test_by_default_code_2_reads_as_itk_words_it_never_no_description() -> None:
    event = v23()
    assert event.stay is not None
    method = event.stay.discharge_method
    assert method is not None
    assert method.system == local_system("mh-trust", "PV1-36")  # never relabelled national
    assert method.code == "2"
    assert method.display is not None
    assert method.display.startswith("ITK table 0112: GP Follow Up")
    notification = text(event)
    assert "no description" not in notification
    assert "Discharge method: ITK table 0112: GP Follow Up" in notification
    assert "retired NHS discharge method 2: self-discharge" in notification


@pytest.mark.parametrize(
    ("code", "label"),
    [("10", "Died in Department"), ("12", "Left Department Before Treatment"), ("14", "Other")],
)
def test_other_itk_only_codes_read_as_itk_words_them(code: str, label: str) -> None:
    event = v23(pv1_36=code)
    assert event.stay is not None
    assert event.stay.discharge_method is not None
    assert event.stay.discharge_method.display == f"ITK table 0112: {label}"
    assert f"Discharge method: ITK table 0112: {label} ({code}, the sender's code" in text(event)


def test_a_dictionary_code_is_still_read_as_the_dictionary_by_default() -> None:
    event = v23(pv1_36="1")
    assert event.stay is not None
    assert event.stay.discharge_method is not None
    assert event.stay.discharge_method.system == DISCHARGE_METHOD_ENGLAND
    assert event.stay.discharge_method.code == "1"


@pytest.mark.parametrize(
    ("code", "method", "label"),
    [
        ("2", "1", "GP Follow Up"),
        ("12", "6", "Left Department Before Treatment"),
        ("10", "4", "Died in Department"),
        ("1", "8", "Admitted as inpatient"),
    ],
)
def test_a_feed_that_sends_itk_0112_gets_dictionary_codes(
    code: str, method: str, label: str
) -> None:
    event = v23(ITK, pv1_36=code)
    assert event.stay is not None
    coding = event.stay.discharge_method
    assert coding is not None
    assert (coding.system, coding.code) == (DISCHARGE_METHOD_ENGLAND, method)
    assert coding.display == DISCHARGE_METHODS[method]
    assert f"PV1-36: ITK table 0112 {code!r} ({label}) read as discharge method {method!r}" in (
        event.warnings
    )


def test_with_the_itk_table_other_stays_the_senders_code_with_its_label() -> None:
    event = v23(ITK, pv1_36="14")
    assert event.stay is not None
    assert event.stay.discharge_method is not None
    assert event.stay.discharge_method.display == "ITK table 0112: Other"


def test_the_older_feed_discharge_as_reviewed() -> None:
    notification = text(v23())
    if os.environ.get(UPDATE_ENV) == "1":
        GOLDEN.write_text(notification, encoding="utf-8")
    assert notification == GOLDEN.read_text(encoding="utf-8")
