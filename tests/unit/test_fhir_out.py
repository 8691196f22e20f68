from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from mappings.fhir.inbound import map_fhir
from mappings.fhir.outbound import ENCOUNTER_STATUS, fhir_date_time, render_fhir_message
from mappings.fhir.vocabulary import CARE_EVENT_SYSTEM, EVENT_CODES
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import (
    CareEvent,
    EventKind,
    Identifier,
    IdentifierKind,
    Instant,
    Location,
    NameUse,
    Precision,
    StayStatus,
)
from mappings.profile import FeedProfile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
PROFILES = {
    name: FeedProfile.from_mapping(data)
    for name, data in yaml.safe_load((FIXTURES / "profiles.yaml").read_text()).items()
}
HL7_FIXTURES = sorted(FIXTURES.glob("*.hl7"))


def profile_for(fixture: Path) -> FeedProfile:
    return PROFILES[fixture.stem.split("_", 1)[0]]


def fixture_event(fixture: Path) -> CareEvent:
    return map_hl7v2(fixture.read_bytes(), profile_for(fixture))


def by_name(name: str) -> CareEvent:
    return fixture_event(FIXTURES / name)


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def the(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (found,) = resources(bundle, resource_type)
    return found


# --- valid FHIR R4 ----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", HL7_FIXTURES, ids=lambda p: p.stem)
def test_every_rendered_bundle_validates_against_the_r4b_models(fixture: Path) -> None:
    bundle = render_fhir_message(fixture_event(fixture))
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        model = get_fhir_model_class(entry["resource"]["resourceType"])
        model.model_validate(entry["resource"])
    assert orjson.loads(orjson.dumps(bundle)) == bundle  # plain data, orjson-serialisable


@pytest.mark.parametrize("kind", list(EventKind), ids=lambda k: k.value)
def test_every_event_kind_renders_a_valid_bundle_that_reads_back_as_that_kind(
    kind: EventKind,
) -> None:
    # kinds no fixture has (A04, A05, A38, A52, A53): an event of the same shape, re-kinded
    person = kind in (EventKind.PERSON_UPDATE, EventKind.MERGE)
    source = by_name(
        "mh_a40_merge.hl7"
        if kind is EventKind.MERGE
        else "mh_a31_person_update.hl7"
        if person
        else "mh_a08_update.hl7"
    )
    event = source.model_copy(update={"kind": kind})
    bundle = render_fhir_message(event)
    Bundle.model_validate(bundle)
    assert map_fhir(orjson.dumps(bundle), PROFILES["mh"]).kind is kind


@pytest.mark.parametrize("fixture", HL7_FIXTURES, ids=lambda p: p.stem)
def test_the_bundle_is_a_message_whose_header_comes_first_and_names_the_event(
    fixture: Path,
) -> None:
    event = fixture_event(fixture)
    bundle = render_fhir_message(event)
    assert bundle["type"] == "message"
    header = bundle["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader"
    assert header["eventCoding"]["system"] == CARE_EVENT_SYSTEM
    assert header["eventCoding"]["code"] == EVENT_CODES[event.kind]
    assert header["source"]["endpoint"] == f"urn:carebridge:{event.source.feed}"
    focus = header["focus"][0]["reference"]
    focused = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == focus)
    assert focused["resourceType"] == ("Encounter" if event.stay else "Patient")


def test_every_reference_resolves_inside_the_bundle() -> None:
    bundle = render_fhir_message(by_name("mh_a02_transfer.hl7"))
    full_urls = {e["fullUrl"] for e in bundle["entry"]}

    def references(value: Any) -> list[str]:
        if isinstance(value, dict):
            found = [value["reference"]] if isinstance(value.get("reference"), str) else []
            return found + [r for v in value.values() for r in references(v)]
        if isinstance(value, list):
            return [r for v in value for r in references(v)]
        return []

    assert references(bundle["entry"])
    assert set(references(bundle["entry"])) <= full_urls


def test_every_event_kind_has_a_code() -> None:
    assert set(EVENT_CODES) == set(EventKind)
    assert len(set(EVENT_CODES.values())) == len(EventKind)


# --- stable ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", HL7_FIXTURES, ids=lambda p: p.stem)
def test_rendering_twice_gives_identical_bundles(fixture: Path) -> None:
    event = fixture_event(fixture)
    assert orjson.dumps(render_fhir_message(event)) == orjson.dumps(render_fhir_message(event))


def test_ids_derive_from_the_event_id_and_the_bundle_identifier_is_its_urn() -> None:
    event = by_name("mh_a03_discharge.hl7")
    other = event.model_copy(update={"event_id": "ev-other"})
    first, second = render_fhir_message(event), render_fhir_message(other)
    assert first["identifier"] == {
        "system": "urn:ietf:rfc:3986",
        "value": f"urn:uuid:{first['id']}",
    }
    ids = {e["resource"]["id"] for e in first["entry"]}
    assert ids.isdisjoint({e["resource"]["id"] for e in second["entry"]})
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in first["entry"])


def test_now_sets_only_the_timestamp() -> None:
    event = by_name("mh_a03_discharge.hl7")
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    plain, sent = render_fhir_message(event), render_fhir_message(event, now=now)
    assert sent["timestamp"] == "2026-03-01T12:00:00Z"
    assert plain["timestamp"] == "2026-02-02T10:45:00Z"  # recorded (EVN-2): deterministic
    assert {**sent, "timestamp": None} == {**plain, "timestamp": None}


# --- what goes where ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", HL7_FIXTURES, ids=lambda p: p.stem)
def test_encounter_status_follows_the_kind_or_else_the_stay(fixture: Path) -> None:
    event = fixture_event(fixture)
    encounters = resources(render_fhir_message(event), "Encounter")
    if event.stay is None:
        assert encounters == []
        return
    by_stay = {
        StayStatus.PLANNED: "planned",
        StayStatus.ACTIVE: "in-progress",
        StayStatus.ON_LEAVE: "onleave",
        StayStatus.FINISHED: "finished",
        StayStatus.CANCELLED: "cancelled",
        None: "unknown",
    }
    expected = ENCOUNTER_STATUS.get(event.kind, by_stay[event.stay.status])
    assert encounters[0]["status"] == expected


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (EventKind.PRE_ADMISSION, "planned"),
        (EventKind.ADMISSION, "in-progress"),
        (EventKind.TRANSFER, "in-progress"),
        (EventKind.LEAVE_END, "in-progress"),
        (EventKind.CANCEL_DISCHARGE, "in-progress"),
        (EventKind.LEAVE_START, "onleave"),
        (EventKind.DISCHARGE, "finished"),
        (EventKind.CANCEL_ADMISSION, "entered-in-error"),
    ],
)
def test_the_encounter_status_of_each_stay_event(kind: EventKind, status: str) -> None:
    event = by_name("mh_a08_update.hl7").model_copy(update={"kind": kind})
    assert the(render_fhir_message(event), "Encounter")["status"] == status


def test_a_discharge_carries_the_uk_core_stay_details() -> None:
    bundle = render_fhir_message(by_name("mhlocal_a03_discharge.hl7"))
    encounter = the(bundle, "Encounter")
    urls = [e["url"] for e in encounter["extension"]]
    assert urls == [
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-LegalStatus",
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod",
    ]
    legal = {p["url"]: p for p in encounter["extension"][0]["extension"]}
    assert legal["legalStatusClassification"]["valueCodeableConcept"]["coding"][0]["code"] == "03"
    disposition = encounter["hospitalization"]["dischargeDisposition"]["coding"][0]
    assert disposition["code"] == "19"  # the feed's HOME through its code table
    assert encounter["period"]["end"] == "2026-03-01T16:30:00Z"
    assert the(bundle, "Organization")["identifier"][0]["value"] == "RXT"


def test_a_transfer_lists_where_the_patient_came_from_then_where_they_are() -> None:
    event = by_name("mh_a02_transfer.hl7")
    bundle = render_fhir_message(event)
    statuses = [entry["status"] for entry in the(bundle, "Encounter")["location"]]
    assert statuses == ["completed", "active"]
    wards = {
        r["name"]
        for r in resources(bundle, "Location")
        if r["physicalType"]["coding"][0]["code"] == "wa"
    }
    assert event.location_from is not None
    assert event.location_to is not None
    assert wards == {event.location_from.ward, event.location_to.ward}


def test_an_nhs_number_that_failed_its_check_is_not_sent() -> None:
    event = by_name("mh_a03_discharge.hl7")
    bad = Identifier(kind=IdentifierKind.UNVERIFIED_NHS_NUMBER, value="9434765918")
    patient = event.patient.model_copy(update={"identifiers": (bad, *event.patient.identifiers)})
    rendered = the(render_fhir_message(event.model_copy(update={"patient": patient})), "Patient")
    assert "9434765918" not in orjson.dumps(rendered).decode()


def test_location_hiding_leaves_out_address_and_gp_and_marks_the_record_restricted() -> None:
    event = by_name("mh_a03_discharge.hl7")
    hidden = event.model_copy(
        update={"patient": event.patient.model_copy(update={"location_hidden": True})}
    )
    assert the(render_fhir_message(event), "Patient")["address"]
    patient = the(render_fhir_message(hidden), "Patient")
    assert "address" not in patient
    assert "generalPractitioner" not in patient
    assert patient["meta"]["security"][0]["code"] == "R"
    back = map_fhir(orjson.dumps(render_fhir_message(hidden)), PROFILES["mh"])
    assert back.patient.location_hidden
    assert back.patient.addresses == ()


def test_a_merge_links_the_survivor_to_the_retired_record() -> None:
    bundle = render_fhir_message(by_name("mh_a40_merge.hl7"))
    survivor, retired = resources(bundle, "Patient")
    assert survivor["link"][0]["type"] == "replaces"
    assert retired["active"] is False
    assert retired["link"][0]["type"] == "replaced-by"


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (
            Instant(
                utc=datetime(2026, 2, 2, 10, 30, tzinfo=UTC),
                original="20260202103000",
                precision=Precision.SECOND,
            ),
            "2026-02-02T10:30:00Z",
        ),
        (
            Instant(
                utc=datetime(2026, 2, 2, 10, 30, 0, 250000, tzinfo=UTC),
                original="x",
                precision=Precision.FRACTION,
            ),
            "2026-02-02T10:30:00.25Z",
        ),
        (
            Instant(
                utc=datetime(2026, 2, 2, 10, 30, tzinfo=UTC),
                original="202602021030",
                precision=Precision.MINUTE,
            ),
            "2026-02-02T10:30:00Z",
        ),
        (
            Instant(
                utc=datetime(2026, 6, 30, 23, 0, tzinfo=UTC),
                original="20260701",
                precision=Precision.DAY,
            ),
            "2026-07-01",
        ),
        (
            Instant(
                utc=datetime(2026, 6, 30, 23, 0, tzinfo=UTC),
                original="2026-07",
                precision=Precision.MONTH,
            ),
            "2026-07",
        ),
    ],
)
def test_instants_keep_their_precision_and_dates_are_never_moved(
    instant: Instant, text: str
) -> None:
    assert fhir_date_time(instant) == text


# --- round trip: HL7 v2 -> care event -> FHIR -> care event --------------------------------------

# Fields that cannot come back the same through FHIR, and why (docs/mapping.md (FHIR part)):
# - `original` and `zone_assumed` of every instant: FHIR carries the instant with its offset, so
#   the text read back is FHIR's, and nothing is assumed;
# - `birth_date_original`, `gender_original`: the sender's own text, which is HL7's;
# - `source`, `event_id`, `trigger`, `warnings`, `cleared`: about the message, not the event;
# - `nhs_number_status` without a valid NHS number, and unverified NHS numbers: never sent;
# - `risk_flags`: no FHIR rendering yet (a Flag resource would carry them).
NOT_CARRIED = frozenset(
    {"source", "event_id", "trigger", "warnings", "cleared", "birth_date_original"}
    | {"gender_original", "original", "zone_assumed", "risk_flags"}
)


def comparable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: comparable(v) for k, v in data.items() if k not in NOT_CARRIED}
    if isinstance(data, list):
        return [comparable(v) for v in data]
    return data


def without_unsent_nhs_numbers(event: CareEvent) -> CareEvent:
    """The event as FHIR can carry it: no unverified NHS number, no status without a number,
    and a number that is not a real patient's without verification status or NH type."""
    kept = as_sent(event.patient.identifiers)
    status = event.patient.nhs_number_status if event.patient.nhs_number else None
    if event.patient.nhs_number_not_real:
        status = None
    patient = event.patient.model_copy(update={"identifiers": kept, "nhs_number_status": status})
    merge = event.merge
    if merge is not None:
        merge = merge.model_copy(update={"survivor": as_sent(merge.survivor)})
    return event.model_copy(update={"patient": patient, "merge": merge})


def as_sent(identifiers: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
    """Identifiers as FHIR carries them: an unverified NHS number is not sent, and one that is
    not a real patient's goes without its verification status and NH type."""
    return tuple(
        i.model_copy(update={"verification": None, "type_code": None}) if i.not_real else i
        for i in identifiers
        if i.kind is not IdentifierKind.UNVERIFIED_NHS_NUMBER
    )


@pytest.mark.parametrize("fixture", HL7_FIXTURES, ids=lambda p: p.stem)
def test_hl7v2_to_fhir_and_back_gives_the_same_event(fixture: Path) -> None:
    event = fixture_event(fixture)
    back = map_fhir(orjson.dumps(render_fhir_message(event)), profile_for(fixture))
    assert comparable(back.model_dump(mode="json")) == comparable(
        without_unsent_nhs_numbers(event).model_dump(mode="json")
    )


def test_an_a03_discharge_round_trips_field_by_field() -> None:
    event = by_name("mh_a03_discharge.hl7")
    back = map_fhir(orjson.dumps(render_fhir_message(event)), PROFILES["mh"])
    assert back.kind is EventKind.DISCHARGE
    assert back.patient.identifiers == as_sent(event.patient.identifiers)
    assert back.patient.names == event.patient.names
    assert back.patient.birth_date == event.patient.birth_date
    assert back.patient.gender == event.patient.gender
    assert back.stay is not None
    assert event.stay is not None
    assert back.stay.discharged_at is not None
    assert event.stay.discharged_at is not None
    assert back.stay.discharged_at.utc == event.stay.discharged_at.utc
    # the same stay, apart from the text the two instants were read from
    same_times = {"admitted_at": back.stay.admitted_at, "discharged_at": back.stay.discharged_at}
    assert back.stay == event.stay.model_copy(update=same_times)
    assert back.occurred_at is not None
    assert event.occurred_at is not None
    assert back.occurred_at.utc == event.occurred_at.utc
    assert back.occurred_at.precision is event.occurred_at.precision
    assert back.location_from == event.location_from


def test_a_minute_precision_time_comes_back_as_whole_seconds() -> None:
    event = by_name("mh_a03_discharge.hl7")
    assert event.occurred_at is not None
    minute = event.occurred_at.model_copy(update={"precision": Precision.MINUTE})
    back = map_fhir(
        orjson.dumps(render_fhir_message(event.model_copy(update={"occurred_at": minute}))),
        PROFILES["mh"],
    )
    assert back.occurred_at is not None
    assert back.occurred_at.precision is Precision.SECOND
    assert back.occurred_at.utc == minute.utc


def test_a_name_of_unknown_use_comes_back_official() -> None:
    event = by_name("mh_a03_discharge.hl7")
    name = event.patient.names[0].model_copy(update={"use": NameUse.UNKNOWN})
    patient = event.patient.model_copy(update={"names": (name,)})
    back = map_fhir(
        orjson.dumps(render_fhir_message(event.model_copy(update={"patient": patient}))),
        PROFILES["mh"],
    )
    assert back.patient.names[0].use is NameUse.OFFICIAL


def test_a_location_with_only_a_description_round_trips() -> None:
    event = by_name("mh_a08_update.hl7")
    assert event.stay is not None
    place = Location(description="Crisis house")
    stay = event.stay.model_copy(update={"location": place, "site_ods": None})
    back = map_fhir(
        orjson.dumps(render_fhir_message(event.model_copy(update={"stay": stay}))),
        PROFILES["mh"],
    )
    assert back.stay is not None
    assert back.stay.location == place
