"""Clock changes (issue 13 point 8): a local time without an offset that does not exist (the
March hour) or that happens twice (the October hour) both resolve to the earlier instant, with
a warning on the care event, for every HL7 v2 timestamp and in the FHIR reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mappings.clinical.follow_up import DEFAULT_RULES, follow_up_for
from mappings.errors import MappingError
from mappings.fhir.inbound import map_fhir
from mappings.fhir.outcome import http_status
from mappings.fhir.values import fhir_instant
from mappings.hl7v2.inbound import map_hl7v2
from mappings.hl7v2.types import Reading
from mappings.profile import FeedProfile
from mappings.wallclock import resolve_local

LONDON = ZoneInfo("Europe/London")
MH = FeedProfile(feed="mh-trust")
SPRING = "20260329013000"  # 01:30 on 29 Mar 2026: the clocks go from 01:00 GMT to 02:00 BST
AUTUMN = "20261025013000"  # 01:30 on 25 Oct 2026: the clocks go from 02:00 BST to 01:00 GMT
SKIPPED = "local time does not exist (clocks go forward): the earlier instant is used"
TWICE = "local time happens twice (clocks go back): the earlier instant is used"
FIELDS = ("MSH-7", "EVN-2", "EVN-6", "PV1-44", "PV1-45", "PID-29", "PV2-47")


def discharge(when: str, *, field: str = "all") -> str:
    times = {k: when if field in ("all", k) else "20260601120000" for k in FIELDS}
    if field not in ("all", "PV1-44"):
        times["PV1-44"] = "20260101090000"
    pv1 = ["PV1", "1", "I", "RXT^WARD9^BED1^RXT01", *[""] * 5, "C1234567^CLIN", "710"]
    pv1 += [""] * (36 - len(pv1)) + ["1", "19"] + [""] * 6 + [times["PV1-44"], times["PV1-45"]]
    pv2 = ["PV2", *[""] * 46, times["PV2-47"]]
    pid = ["PID", "1", "", "9990000018^^^NHS^NH", "", "SYNTHETIC^CLOCK", "", "19800101", "2"]
    pid += [""] * (29 - len(pid)) + [times["PID-29"]]
    segments = [
        f"MSH|^~\\&|RIO|RXT|ROUTE|ROUTE|{times['MSH-7']}||ADT^A03^ADT_A03|CLK-1|P|2.4",
        f"EVN|A03|{times['EVN-2']}||||{times['EVN-6']}",
        "|".join(pid),
        "|".join(pv1),
        "|".join(pv2),
    ]
    return "\r".join(segments) + "\r"


@pytest.mark.parametrize(
    ("text", "utc", "other"),
    [
        # the earlier instant, and the later reading (the old rule's for the March hour)
        (
            SPRING,
            datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        ),
        (
            AUTUMN,
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        ),
    ],
)
def test_both_uncertain_hours_give_the_earlier_instant_and_due_time(
    text: str, utc: datetime, other: datetime
) -> None:
    event = map_hl7v2(discharge(text), MH)
    assert event.stay is not None
    assert event.stay.discharged_at is not None
    assert event.stay.discharged_at.utc == utc
    assert event.occurred_at is not None
    assert event.occurred_at.utc == utc
    follow_up = follow_up_for(event, DEFAULT_RULES)
    assert follow_up is not None
    assert follow_up.due_at == utc + timedelta(hours=72)
    assert follow_up.due_at < other + timedelta(hours=72)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(("text", "warning"), [(SPRING, SKIPPED), (AUTUMN, TWICE)])
def test_every_hl7v2_timestamp_warns_on_the_care_event(field: str, text: str, warning: str) -> None:
    event = map_hl7v2(discharge(text, field=field), MH)
    assert f"{field}: {warning}" in event.warnings
    assert [w for w in event.warnings if warning in w] == [f"{field}: {warning}"]


def test_an_explicit_offset_is_never_second_guessed() -> None:
    event = map_hl7v2(discharge(SPRING + "+0000"), MH)
    assert event.stay is not None
    assert event.stay.discharged_at is not None
    assert event.stay.discharged_at.utc == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert not [w for w in event.warnings if "clocks go" in w]


@pytest.mark.parametrize(
    ("naive", "expected"),
    [
        (datetime(2026, 3, 29, 0, 59), (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), None)),
        (datetime(2026, 3, 29, 1, 0), (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), "nonexistent")),
        (datetime(2026, 3, 29, 2, 0), (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), None)),
        (datetime(2026, 10, 25, 0, 59), (datetime(2026, 10, 24, 23, 59, tzinfo=UTC), None)),
        (datetime(2026, 10, 25, 1, 0), (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), "ambiguous")),
        (datetime(2026, 10, 25, 1, 59), (datetime(2026, 10, 25, 0, 59, tzinfo=UTC), "ambiguous")),
        (datetime(2026, 10, 25, 2, 0), (datetime(2026, 10, 25, 2, 0, tzinfo=UTC), None)),
    ],
)
def test_the_edges_of_both_changes(naive: datetime, expected: tuple[datetime, str | None]) -> None:
    assert resolve_local(naive, LONDON) == expected


def _resolve_by_both_folds(naive: datetime, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """`resolve_local` as its docstring defines it: both folds to UTC, the earlier one."""
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first, None
    exists = first.astimezone(zone).replace(tzinfo=None) == naive
    return min(first, second), "ambiguous" if exists else "nonexistent"


@pytest.mark.parametrize(
    "zone", ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
)
def test_resolve_local_agrees_with_both_folds_every_quarter_hour_of_2026(zone: str) -> None:
    # The usual case takes a shortcut (one offset for both folds); every change of these zones
    # in 2026 (Lord Howe's is half an hour) and the times around them must agree.
    tz, naive, changes = ZoneInfo(zone), datetime(2026, 1, 1), 0
    while naive < datetime(2027, 1, 1):
        for fold in (0, 1):
            got = resolve_local(naive.replace(fold=fold), tz)
            assert got == _resolve_by_both_folds(naive, tz), (zone, naive, fold)
            assert got[0].tzinfo is UTC
            assert got[0].fold == 0
        changes += resolve_local(naive, tz)[1] is not None
        naive += timedelta(minutes=15)
    assert changes == (0 if zone in ("Asia/Kolkata", "UTC") else 4 if "Howe" in zone else 8)


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York"])
def test_resolve_local_past_the_calendar_raises_overflow(zone: str) -> None:
    edge = datetime(1, 1, 1) if zone == "Asia/Tokyo" else datetime(9999, 12, 31, 23, 59)
    with pytest.raises(OverflowError):
        resolve_local(edge, ZoneInfo(zone))


@pytest.mark.parametrize(
    ("text", "utc", "warnings"),
    [
        ("2026-03-29T01:30:00+01:00", datetime(2026, 3, 29, 0, 30, tzinfo=UTC), []),
        ("2026-03-29", datetime(2026, 3, 29, 0, 0, tzinfo=UTC), []),  # partial: local midnight
        ("2026-10", datetime(2026, 9, 30, 23, 0, tzinfo=UTC), []),
        (
            "2026-03-29T01:30:00",
            datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
            ["a time without an offset: read as local wall-clock time", SKIPPED],
        ),
        (
            "2026-10-25T01:30:00",
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            ["a time without an offset: read as local wall-clock time", TWICE],
        ),
    ],
)
def test_the_fhir_reader_resolves_the_same_way(
    text: str, utc: datetime, warnings: list[str]
) -> None:
    reading = Reading(feed="mh-trust", zone=LONDON)
    instant = fhir_instant(text, "Encounter.period.end", reading)
    assert instant is not None
    assert instant.utc == utc
    assert reading.warnings == [f"Encounter.period.end: {w}" for w in warnings]


FHIR_MESSAGE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "fhir" / "mh_discharge_message.json"
).read_text()


def fhir_discharge(end: str) -> bytes:
    return FHIR_MESSAGE.replace('"end": "2026-02-02T10:30:00+00:00"', f'"end": "{end}"', 1).encode()


def test_over_fhir_a_time_without_offset_is_refused_naming_the_element() -> None:
    with pytest.raises(MappingError) as caught:
        map_fhir(fhir_discharge("2026-10-25T01:30:00"), MH)
    assert caught.value.location == "Bundle.entry[1].resource.period.end"
    assert http_status(caught.value) == 422


@pytest.mark.parametrize(
    ("end", "utc"),
    [
        ("2026-10-25", datetime(2026, 10, 24, 23, 0, tzinfo=UTC)),  # partial: local midnight, BST
        ("2026-10-25T01:30:00+01:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("2026-10-25T01:30:00Z", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ],
)
def test_over_fhir_partial_dates_and_offsets_are_read(end: str, utc: datetime) -> None:
    event = map_fhir(fhir_discharge(end), MH)
    assert event.stay is not None
    assert event.stay.discharged_at is not None
    assert event.stay.discharged_at.utc == utc
