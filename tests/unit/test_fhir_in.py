import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.codes import (
    ADMISSION_METHOD_ENGLAND,
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_METHOD_ENGLAND,
    HL7_PATIENT_CLASS,
    LEGAL_STATUS_ENGLAND,
    SOURCE_OF_ADMISSION_ENGLAND,
    local_system,
)
from mappings.errors import MappingError
from mappings.fhir.inbound import map_fhir
from mappings.fhir.read import MAX_BYTES
from mappings.fhir.vocabulary import (
    CARE_EVENT_SYSTEM,
    EVENT_OCCURRED_URL,
    LEGAL_STATUS_URL,
    NHS_NUMBER_VERIFICATION_URL,
)
from mappings.inbound import map_message
from mappings.model import (
    NHS_NUMBER_SYSTEM,
    CareEvent,
    CareSetting,
    EventKind,
    Gender,
    IdentifierKind,
    LegalStatusContext,
    NameUse,
    NhsNumberStatus,
    Precision,
    StayStatus,
)
from mappings.profile import FeedProfile, event_id
from tests.golden_util import assert_golden

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "fhir"
GOLDEN = TESTS / "golden" / "fhir"

MH = FeedProfile(feed="mh-trust")
ODS_ORG = "https://fhir.nhs.uk/Id/ods-organization-code"
PHYSICAL = "http://terminology.hl7.org/CodeSystem/location-physical-type"
ENC, PAT = (
    "urn:uuid:00000000-0000-4000-8000-0000000000e1",
    "urn:uuid:00000000-0000-4000-8000-0000000000a1",
)
WARD_A, WARD_B = (
    "urn:uuid:00000000-0000-4000-8000-0000000000b1",
    "urn:uuid:00000000-0000-4000-8000-0000000000b2",
)
PRACTITIONER = "urn:uuid:00000000-0000-4000-8000-0000000000c1"
PROVIDER = "urn:uuid:00000000-0000-4000-8000-0000000000d1"


def base() -> dict[str, Any]:
    """A small UK Core messaging Bundle: MessageHeader (no event we know), an in-progress
    Encounter on one ward, its Patient, Practitioner, ward Location and provider."""
    return {
        "resourceType": "Bundle",
        "id": "bundle-1",
        "identifier": {"system": "https://trust.example/Id/message", "value": "MSG-0001"},
        "type": "message",
        "timestamp": "2026-01-14T09:30:00Z",
        "entry": [
            {
                "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "MessageHeader",
                    "id": "header-1",
                    "eventCoding": {"system": "https://trust.example/events", "code": "adt"},
                    "source": {"name": "RiO", "endpoint": "https://trust.example/fhir"},
                    "focus": [{"reference": ENC}],
                },
            },
            {
                "fullUrl": ENC,
                "resource": {
                    "resourceType": "Encounter",
                    "id": "enc-1",
                    "identifier": [{"use": "official", "value": "SPELL-1"}],
                    "status": "in-progress",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "IMP",
                    },
                    "subject": {"reference": PAT},
                    "participant": [{"individual": {"reference": PRACTITIONER}}],
                    "period": {"start": "2026-01-14T09:15:00Z"},
                    "location": [{"location": {"reference": WARD_A}, "status": "active"}],
                    "serviceProvider": {"reference": PROVIDER},
                },
            },
            {
                "fullUrl": PAT,
                "resource": {
                    "resourceType": "Patient",
                    "id": "pat-1",
                    "identifier": [
                        {"system": NHS_NUMBER_SYSTEM, "value": "4010232137"},
                        {"system": "https://trust.example/Id/mrn", "value": "RXT1234567"},
                    ],
                    "name": [{"family": "SYNTHETIC", "given": ["ALPHA"]}],
                    "gender": "female",
                    "birthDate": "1980-01-01",
                },
            },
            {
                "fullUrl": PRACTITIONER,
                "resource": {
                    "resourceType": "Practitioner",
                    "identifier": [
                        {"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "1234567"}
                    ],
                    "name": [{"family": "RESPONSIBLE", "given": ["CLINICIAN"], "prefix": ["DR"]}],
                },
            },
            {"fullUrl": WARD_A, "resource": _ward("WARD7")},
            {"fullUrl": WARD_B, "resource": _ward("WARD9")},
            {
                "fullUrl": PROVIDER,
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": ODS_ORG, "value": "RXT"}],
                },
            },
        ],
    }


def _ward(name: str) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "name": name,
        "physicalType": {"coding": [{"system": PHYSICAL, "code": "wa"}]},
    }


def resource(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    )


def run(bundle: dict[str, Any], profile: FeedProfile = MH) -> CareEvent:
    return map_fhir(orjson.dumps(bundle), profile)


def rejection(data: dict[str, Any] | bytes) -> MappingError:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    with pytest.raises(MappingError) as caught:
        map_fhir(raw, MH)
    return caught.value


def with_event(code: str, status: str | None = None) -> dict[str, Any]:
    bundle = base()
    resource(bundle, "MessageHeader")["eventCoding"] = {"system": CARE_EVENT_SYSTEM, "code": code}
    if status:
        resource(bundle, "Encounter")["status"] = status
    return bundle


def with_status(status: str, **encounter: Any) -> dict[str, Any]:
    bundle = base()
    resource(bundle, "Encounter").update(status=status, **encounter)
    return bundle


# --- golden files ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_fixture_maps_to_its_golden_care_event(fixture: Path) -> None:
    event = map_fhir(fixture.read_bytes(), MH)
    assert_golden(event.model_dump(mode="json"), GOLDEN / f"{fixture.stem}.json")


def test_the_mental_health_discharge_fixture_carries_legal_status_and_verified_nhs_number() -> None:
    event = map_fhir((FIXTURES / "mh_discharge_message.json").read_bytes(), MH)
    assert event.kind is EventKind.DISCHARGE
    assert event.patient.nhs_number == "9434765919"
    assert event.patient.nhs_number_status is NhsNumberStatus.VERIFIED
    assert event.stay is not None
    assert [(s.code.code, s.context) for s in event.stay.legal_status] == [
        ("02", LegalStatusContext.ADMISSION),
        ("03", LegalStatusContext.DISCHARGE),
    ]
    assert event.stay.care_setting is CareSetting.MENTAL_HEALTH
    assert event.patient.gp_practice_ods == "Y99901"


# --- what happened: Encounter.status and MessageHeader.event ---------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "stay_status"),
    [
        ("planned", EventKind.PRE_ADMISSION, StayStatus.PLANNED),
        ("arrived", EventKind.ADMISSION, StayStatus.ACTIVE),
        ("triaged", EventKind.ADMISSION, StayStatus.ACTIVE),
        ("in-progress", EventKind.ADMISSION, StayStatus.ACTIVE),
        ("onleave", EventKind.LEAVE_START, StayStatus.ON_LEAVE),
        ("finished", EventKind.DISCHARGE, StayStatus.FINISHED),
        ("cancelled", EventKind.CANCEL_ADMISSION, StayStatus.CANCELLED),
        ("entered-in-error", EventKind.CANCEL_ADMISSION, StayStatus.CANCELLED),
        ("unknown", EventKind.UPDATE, None),
    ],
)
def test_encounter_status_says_what_happened_when_the_header_does_not(
    status: str, kind: EventKind, stay_status: StayStatus | None
) -> None:
    event = run(with_status(status))
    assert event.kind is kind
    assert event.stay is not None
    assert event.stay.status is stay_status
    assert event.trigger == "adt"


def test_a_cancel_says_what_it_cancels() -> None:
    event = run(with_status("entered-in-error"))
    assert event.cancels is EventKind.ADMISSION


def test_in_progress_with_a_completed_earlier_location_is_a_transfer() -> None:
    bundle = with_status(
        "in-progress",
        location=[
            {
                "location": {"reference": WARD_A},
                "status": "completed",
                "period": {"start": "2026-01-14T09:15:00Z", "end": "2026-01-20T14:10:00Z"},
            },
            {
                "location": {"reference": WARD_B},
                "status": "active",
                "period": {"start": "2026-01-20T14:10:00Z"},
            },
        ],
    )
    event = run(bundle)
    assert event.kind is EventKind.TRANSFER
    assert event.location_from is not None
    assert event.location_from.ward == "WARD7"
    assert event.location_to is not None
    assert event.location_to.ward == "WARD9"
    assert event.stay is not None
    assert event.stay.location == event.location_to
    assert event.occurred_at is not None
    assert event.occurred_at.original == "2026-01-20T14:10:00Z"


def test_several_active_locations_without_a_completed_one_stay_an_admission() -> None:
    bundle = with_status(
        "in-progress",
        location=[
            {"location": {"reference": WARD_A}, "status": "active"},
            {"location": {"reference": WARD_B}, "status": "active"},
        ],
    )
    assert run(bundle).kind is EventKind.ADMISSION


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("leave-end", "in-progress", EventKind.LEAVE_END),
        ("transfer", "in-progress", EventKind.TRANSFER),
        ("registration", "in-progress", EventKind.REGISTRATION),
        ("update", "in-progress", EventKind.UPDATE),
        ("cancel-transfer", "in-progress", EventKind.CANCEL_TRANSFER),
        ("cancel-leave-end", "onleave", EventKind.CANCEL_LEAVE_END),
        ("discharge", "entered-in-error", EventKind.CANCEL_DISCHARGE),
        ("leave-start", "entered-in-error", EventKind.CANCEL_LEAVE_START),
        ("cancel-discharge", "entered-in-error", EventKind.CANCEL_DISCHARGE),
        ("update", "entered-in-error", EventKind.CANCEL_ADMISSION),
    ],
)
def test_our_own_event_code_takes_precedence_over_the_status(
    code: str, status: str, kind: EventKind
) -> None:
    assert run(with_event(code, status)).kind is kind


def test_entered_in_error_leaves_the_stay_as_it_was_before_the_cancelled_event() -> None:
    event = run(with_event("discharge", "entered-in-error"))
    assert event.stay is not None
    assert event.stay.status is StayStatus.ACTIVE
    assert event.cancels is EventKind.DISCHARGE


@pytest.mark.parametrize(
    ("system", "code", "kind"),
    [
        (
            "http://hl7.org/fhir/us/davinci-alerts/CodeSystem/notification-event",
            "notification-transfer",
            EventKind.TRANSFER,
        ),
        ("http://terminology.hl7.org/CodeSystem/v2-0003", "A03", EventKind.DISCHARGE),
        ("http://terminology.hl7.org/CodeSystem/v2-0003", "A21", EventKind.LEAVE_START),
        ("http://snomed.info/sct", "306689006", EventKind.DISCHARGE),
    ],
)
def test_known_foreign_event_codes_are_read(system: str, code: str, kind: EventKind) -> None:
    bundle = base()
    resource(bundle, "MessageHeader")["eventCoding"] = {"system": system, "code": code}
    if kind is EventKind.DISCHARGE:  # the Encounter must agree that the stay ended
        period = {"start": "2026-01-14T09:15:00Z", "end": "2026-02-02T10:30:00Z"}
        resource(bundle, "Encounter").update(status="finished", period=period)
    event = run(bundle)
    assert event.kind is kind
    assert event.trigger == code


def test_a_person_update_needs_no_encounter() -> None:
    bundle = with_event("person-update")
    bundle["entry"] = [e for e in bundle["entry"] if e["fullUrl"] not in (ENC, PRACTITIONER)]
    resource(bundle, "MessageHeader")["focus"] = [{"reference": PAT}]
    event = run(bundle)
    assert event.kind is EventKind.PERSON_UPDATE
    assert event.stay is None
    assert event.patient.nhs_number == "4010232137"


def test_a_merge_reads_the_retired_record_from_patient_link() -> None:
    bundle = with_event("merge")
    retired = "urn:uuid:00000000-0000-4000-8000-0000000000a2"
    resource(bundle, "MessageHeader")["focus"] = [{"reference": PAT}]
    resource(bundle, "Patient")["link"] = [{"other": {"reference": retired}, "type": "replaces"}]
    bundle["entry"].append(
        {
            "fullUrl": retired,
            "resource": {
                "resourceType": "Patient",
                "active": False,
                "identifier": [{"system": "https://trust.example/Id/mrn", "value": "OLD-1"}],
                "link": [{"other": {"reference": PAT}, "type": "replaced-by"}],
            },
        }
    )
    event = run(bundle)
    assert event.kind is EventKind.MERGE
    assert event.merge is not None
    assert [i.value for i in event.merge.retired] == ["OLD-1"]
    assert [i.value for i in event.merge.survivor] == ["4010232137", "RXT1234567"]


def test_an_event_kind_that_needs_an_encounter_is_refused_without_one() -> None:
    bundle = with_event("admission")
    bundle["entry"] = [e for e in bundle["entry"] if e["fullUrl"] != ENC]
    resource(bundle, "MessageHeader")["focus"] = [{"reference": PAT}]
    error = rejection(bundle)
    assert (error.code, error.location) == ("101", "Bundle.entry")


def test_a_message_about_something_else_than_an_encounter_is_refused() -> None:
    bundle = base()
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000f1",
            "resource": {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": PAT},
            },
        }
    )
    resource(bundle, "MessageHeader")["focus"] = [
        {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000f1"}
    ]
    error = rejection(bundle)
    assert (error.code, error.location) == ("200", "Bundle.entry[0].resource.focus")
    assert "ServiceRequest" in error.reason


def test_two_encounters_and_no_focus_is_ambiguous() -> None:
    bundle = base()
    del resource(bundle, "MessageHeader")["focus"]
    second = copy.deepcopy(bundle["entry"][1])
    second["fullUrl"] = "urn:uuid:00000000-0000-4000-8000-0000000000e2"
    bundle["entry"].append(second)
    error = rejection(bundle)
    assert (error.code, error.location) == ("100", "Bundle.entry")


# --- references ---------------------------------------------------------------------------


def test_relative_references_resolve_against_restful_full_urls() -> None:
    bundle = base()
    server = "https://trust.example/fhir/"
    for entry in bundle["entry"]:
        entry["resource"]["id"] = entry["resource"].get("id") or entry["fullUrl"][-4:]
        entry["fullUrl"] = f"{server}{entry['resource']['resourceType']}/{entry['resource']['id']}"
    encounter = resource(bundle, "Encounter")
    encounter["subject"] = {"reference": "Patient/pat-1"}
    encounter["location"] = [{"location": {"reference": "Location/00b1"}, "status": "active"}]
    encounter["serviceProvider"] = {"reference": f"{server}Organization/00d1"}
    resource(bundle, "MessageHeader")["focus"] = [{"reference": "Encounter/enc-1"}]
    bundle["type"] = "transaction"
    event = run(bundle)
    assert event.patient.nhs_number == "4010232137"
    assert event.stay is not None
    assert event.stay.location is not None
    assert event.stay.location.ward == "WARD7"
    assert event.stay.provider_ods == "RXT"


def test_a_single_encounter_with_its_patient_contained_maps() -> None:
    bundle = base()
    encounter = resource(bundle, "Encounter")
    patient = dict(resource(bundle, "Patient"), id="p")
    ward = dict(_ward("WARD3"), id="w")
    encounter.update(
        contained=[patient, ward],
        subject={"reference": "#p"},
        location=[{"location": {"reference": "#w"}, "status": "active"}],
        serviceProvider={"identifier": {"system": ODS_ORG, "value": "RXT"}},
        participant=[],
    )
    event = map_fhir(orjson.dumps(encounter), MH)
    assert event.kind is EventKind.ADMISSION
    assert event.patient.nhs_number == "4010232137"
    assert event.source.message_id == "enc-1"
    assert event.source.message_type == "Encounter"
    assert event.stay is not None
    assert event.stay.location is not None
    assert event.stay.location.ward == "WARD3"
    assert event.stay.provider_ods == "RXT"


def test_a_subject_outside_the_message_is_taken_from_its_logical_identifier() -> None:
    bundle = base()
    resource(bundle, "Encounter")["subject"] = {
        "reference": "Patient/elsewhere",
        "identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9434765919"},
    }
    event = run(bundle)
    assert event.patient.nhs_number == "9434765919"
    assert any("only the reference's identifier" in w for w in event.warnings)


def test_a_subject_that_cannot_be_found_or_identified_is_refused() -> None:
    bundle = base()
    resource(bundle, "Encounter")["subject"] = {"reference": "Patient/elsewhere"}
    error = rejection(bundle)
    assert (error.code, error.location) == ("101", "Bundle.entry[1].resource.subject")


def test_a_subject_that_is_not_a_patient_is_refused() -> None:
    bundle = base()
    resource(bundle, "Encounter")["subject"] = {"reference": PROVIDER}
    error = rejection(bundle)
    assert (error.code, error.location) == ("102", "Bundle.entry[1].resource.subject")


def test_a_location_chain_gives_bed_ward_site_and_point_of_care() -> None:
    bundle = base()
    site = "urn:uuid:00000000-0000-4000-8000-0000000000b9"
    bed = "urn:uuid:00000000-0000-4000-8000-0000000000b8"
    resource(bundle, "Encounter")["location"] = [{"location": {"reference": bed}}]
    bundle["entry"] += [
        {
            "fullUrl": bed,
            "resource": {
                "resourceType": "Location",
                "name": "BED3",
                "description": "Side room",
                "identifier": [
                    {"system": "https://carebridge.nhs.uk/Id/point-of-care", "value": "RXT"}
                ],
                "physicalType": {"coding": [{"system": PHYSICAL, "code": "bd"}]},
                "partOf": {"reference": WARD_A},
            },
        },
        {
            "fullUrl": site,
            "resource": {
                "resourceType": "Location",
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/ods-site-code", "value": "RXT01"}
                ],
                "physicalType": {"coding": [{"system": PHYSICAL, "code": "si"}]},
            },
        },
    ]
    resource(bundle, "Encounter")  # the ward of the chain points at the site
    next(e for e in bundle["entry"] if e["fullUrl"] == WARD_A)["resource"]["partOf"] = {
        "reference": site
    }
    event = run(bundle)
    assert event.stay is not None
    assert event.stay.location is not None
    location = event.stay.location
    assert (location.bed, location.ward, location.facility) == ("BED3", "WARD7", "RXT01")
    assert (location.point_of_care, location.description) == ("RXT", "Side room")
    assert event.stay.site_ods == "RXT01"


def test_a_location_cycle_does_not_loop() -> None:
    bundle = base()
    ward = next(e for e in bundle["entry"] if e["fullUrl"] == WARD_A)["resource"]
    ward["partOf"] = {"reference": WARD_A}
    event = run(bundle)
    assert event.stay is not None
    assert event.stay.location is not None
    assert event.stay.location.ward == "WARD7"


def test_a_location_known_only_by_its_display_becomes_the_description() -> None:
    bundle = base()
    resource(bundle, "Encounter")["location"] = [{"location": {"display": "Emergency"}}]
    event = run(bundle)
    assert event.stay is not None
    assert event.stay.location is not None
    assert event.stay.location.description == "Emergency"
    assert event.stay.location.ward is None


# --- the patient ---------------------------------------------------------------------------


def test_an_invalid_nhs_number_is_kept_unverified_with_a_warning_and_never_used() -> None:
    bundle = base()
    resource(bundle, "Patient")["identifier"][0]["value"] = "9434765918"
    event = run(bundle)
    identifier = event.patient.identifiers[0]
    assert identifier.kind is IdentifierKind.UNVERIFIED_NHS_NUMBER
    assert identifier.system is None
    assert event.patient.nhs_number is None
    assert "Bundle.entry[2].resource.identifier[0]: NHS number fails the modulus-11 check" in (
        event.warnings
    )


def test_warnings_never_carry_patient_data() -> None:
    bundle = base()
    resource(bundle, "Patient")["identifier"][0]["value"] = "9434765918"
    resource(bundle, "Patient")["birthDate"] = "1980"
    text = json.dumps(run(bundle).warnings)
    for secret in ("9434765918", "SYNTHETIC", "ALPHA", "1980", "RXT1234567"):
        assert secret not in text


@pytest.mark.parametrize("code", [s.value for s in NhsNumberStatus])
def test_the_nhs_number_verification_status_is_read(code: str) -> None:
    bundle = base()
    resource(bundle, "Patient")["identifier"][0]["extension"] = [
        {
            "url": NHS_NUMBER_VERIFICATION_URL,
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                        "code": code,
                    }
                ]
            },
        }
    ]
    event = run(bundle)
    assert event.patient.identifiers[0].verification is NhsNumberStatus(code)
    assert event.patient.nhs_number_status is NhsNumberStatus(code)


def test_an_unknown_verification_status_is_a_warning() -> None:
    bundle = base()
    resource(bundle, "Patient")["identifier"][0]["extension"] = [
        {"url": NHS_NUMBER_VERIFICATION_URL, "valueCodeableConcept": {"coding": [{"code": "99"}]}}
    ]
    event = run(bundle)
    assert event.patient.identifiers[0].verification is None
    assert any("verification status not recognised" in w for w in event.warnings)


def test_patient_demographics_are_read() -> None:
    bundle = base()
    resource(bundle, "Patient").update(
        name=[
            {"use": "official", "family": "SYNTHETIC", "given": ["ALPHA", "B"], "prefix": ["MX"]},
            {"use": "nickname", "given": ["AL"]},
            {"use": "maiden", "family": "OLDNAME"},
        ],
        gender="other",
        address=[{"use": "temp", "line": ["1 Example Street"], "postalCode": "TE1 1ST"}],
        generalPractitioner=[
            {"type": "Organization", "identifier": {"system": ODS_ORG, "value": "Y99901"}},
            {
                "type": "Practitioner",
                "identifier": {
                    "system": "https://fhir.hl7.org.uk/Id/gmp-number",
                    "value": "G9999998",
                },
            },
        ],
        deceasedDateTime="2026-02-01T10:00:00Z",
    )
    patient = run(bundle).patient
    assert [n.use for n in patient.names] == [NameUse.OFFICIAL, NameUse.ALIAS, NameUse.MAIDEN]
    assert patient.names[0].given == ("ALPHA", "B")
    assert patient.gender is Gender.OTHER
    assert patient.addresses[0].postcode == "TE1 1ST"
    assert (patient.gp_practice_ods, patient.gp_code) == ("Y99901", "G9999998")
    assert patient.deceased_at is not None


def test_a_restricted_record_hides_the_location() -> None:
    bundle = base()
    resource(bundle, "Patient")["meta"] = {
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ]
    }
    assert run(bundle).patient.location_hidden


def test_a_partial_birth_date_keeps_only_the_original_text() -> None:
    bundle = base()
    resource(bundle, "Patient")["birthDate"] = "1980-02"
    patient = run(bundle).patient
    assert (patient.birth_date, patient.birth_date_original) == (None, "1980-02")


# --- the stay ---------------------------------------------------------------------------------


def test_uk_core_codes_and_extensions_map_to_the_stay() -> None:
    bundle = with_status("finished")
    encounter = resource(bundle, "Encounter")
    encounter["period"]["end"] = "2026-02-02T10:30:00Z"
    encounter["extension"] = [
        {
            "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod",
            "valueCodeableConcept": {"coding": [{"system": DISCHARGE_METHOD_ENGLAND, "code": "1"}]},
        },
        {
            "url": LEGAL_STATUS_URL,
            "extension": [
                {
                    "url": "legalStatusClassification",
                    "valueCodeableConcept": {
                        "coding": [{"system": LEGAL_STATUS_ENGLAND, "code": "03"}]
                    },
                }
            ],
        },
    ]
    encounter["hospitalization"] = {
        "extension": [
            {
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod",
                "valueCodeableConcept": {
                    "coding": [{"system": ADMISSION_METHOD_ENGLAND, "code": "25"}]
                },
            }
        ],
        "dischargeDisposition": {
            "coding": [{"system": DISCHARGE_DESTINATION_ENGLAND, "code": "19"}]
        },
    }
    event = run(bundle)
    stay = event.stay
    assert stay is not None
    assert stay.discharge_method is not None
    assert stay.discharge_method.code == "1"
    assert stay.admission_method is not None
    assert stay.admission_method.code == "25"
    assert stay.discharge_destination is not None
    assert stay.discharge_destination.display == "Usual place of residence"
    assert [(s.code.code, s.context) for s in stay.legal_status] == [
        ("03", LegalStatusContext.DISCHARGE)  # no context sent: the event's
    ]
    assert stay.patient_class is not None
    assert (stay.patient_class.system, stay.patient_class.code) == (HL7_PATIENT_CLASS, "I")
    assert stay.responsible_clinician is not None
    assert stay.responsible_clinician.code == "C1234567"
    assert (stay.provider_ods, stay.id) == ("RXT", "SPELL-1")
    assert event.occurred_at is not None
    assert event.occurred_at.original == "2026-02-02T10:30:00Z"
    assert event.location_from is not None
    assert event.location_from.ward == "WARD7"


def test_a_code_outside_the_national_list_is_kept_under_its_own_system() -> None:
    bundle = with_status("finished")
    resource(bundle, "Encounter")["hospitalization"] = {
        "dischargeDisposition": {
            "coding": [{"system": "http://snomed.info/sct", "code": "306689006"}]
        },
        "admitSource": {"coding": [{"system": SOURCE_OF_ADMISSION_ENGLAND, "code": "ZZ"}]},
    }
    stay = run(bundle).stay
    assert stay is not None
    assert stay.discharge_destination is not None
    assert stay.discharge_destination.system == "http://snomed.info/sct"
    assert stay.admission_source is not None
    # a national system with a code it does not have is not national: kept as local
    assert stay.admission_source.system == local_system(
        "mh-trust", "Bundle.entry[1].resource.hospitalization.admitSource"
    )


def test_the_feeds_code_table_translates_local_codes() -> None:
    profile = FeedProfile.from_mapping(
        {"feed": "mh-trust", "code_tables": {"discharge_destination": {"HOME": "19"}}}
    )
    bundle = with_status("finished")
    resource(bundle, "Encounter")["hospitalization"] = {
        "dischargeDisposition": {
            "coding": [{"system": "https://trust.example/dest", "code": "HOME"}]
        }
    }
    stay = run(bundle, profile).stay
    assert stay is not None
    assert stay.discharge_destination is not None
    assert (stay.discharge_destination.system, stay.discharge_destination.code) == (
        DISCHARGE_DESTINATION_ENGLAND,
        "19",
    )


def test_a_cancelled_discharge_does_not_read_the_discharge_it_undoes() -> None:
    bundle = with_event("cancel-discharge", "in-progress")
    resource(bundle, "Encounter")["period"]["end"] = "2026-02-02T10:30:00Z"
    stay = run(bundle).stay
    assert stay is not None
    assert stay.discharged_at is None


# --- when ---------------------------------------------------------------------------------


def test_our_occurred_extension_wins_over_the_encounter() -> None:
    bundle = base()
    resource(bundle, "MessageHeader")["extension"] = [
        {"url": EVENT_OCCURRED_URL, "valueDateTime": "2026-01-14T09:20:00Z"}
    ]
    event = run(bundle)
    assert event.occurred_at is not None
    assert event.occurred_at.original == "2026-01-14T09:20:00Z"


def test_leave_starts_when_the_status_history_says() -> None:
    bundle = with_status(
        "onleave",
        statusHistory=[
            {"status": "in-progress", "period": {"start": "2026-01-14T09:15:00Z"}},
            {"status": "onleave", "period": {"start": "2026-01-25T10:00:00+00:00"}},
        ],
    )
    event = run(bundle)
    assert event.kind is EventKind.LEAVE_START
    assert event.occurred_at is not None
    assert event.occurred_at.original == "2026-01-25T10:00:00+00:00"


def test_without_a_time_in_the_encounter_the_bundle_timestamp_is_used_with_a_warning() -> None:
    bundle = with_status("onleave")
    event = run(bundle)
    assert event.occurred_at == event.source.sent_at
    assert any(w.startswith("Bundle.timestamp: event date/time") for w in event.warnings)


def test_a_date_without_time_is_local_midnight_at_day_precision() -> None:
    bundle = base()
    resource(bundle, "Encounter")["period"] = {"start": "2026-07-01"}
    event = run(bundle)
    assert event.occurred_at is not None
    assert event.occurred_at.precision is Precision.DAY
    assert event.occurred_at.zone_assumed
    assert event.occurred_at.utc.isoformat() == "2026-06-30T23:00:00+00:00"  # BST midnight


# --- the source -------------------------------------------------------------------------------


def test_the_message_id_is_the_bundle_identifier_then_header_then_bundle_id() -> None:
    bundle = base()
    assert run(bundle).source.message_id == "MSG-0001"
    del bundle["identifier"]
    assert run(bundle).source.message_id == "header-1"
    del resource(bundle, "MessageHeader")["id"]
    assert run(bundle).source.message_id == "bundle-1"


def test_a_message_without_any_id_is_refused() -> None:
    bundle = base()
    del bundle["identifier"], bundle["id"], resource(bundle, "MessageHeader")["id"]
    error = rejection(bundle)
    assert (error.code, error.location) == ("101", "Bundle.identifier")


def test_the_event_id_is_stable_per_feed_and_message() -> None:
    event = run(base())
    assert event.event_id == event_id("mh-trust", "MSG-0001")
    assert event.source.format.value == "fhir"
    assert event.source.sent_at is not None


# --- invalid and hostile input --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "location"),
    [
        (lambda e: e.update(status="admitted"), "103", "Bundle.entry[1].resource.status"),
        (lambda e: e.pop("class"), "101", "Bundle.entry[1].resource.class"),
        (
            lambda e: e["period"].update(start="2026-13-01T00:00:00Z"),
            "102",
            "Bundle.entry[1].resource.period.start",
        ),
        (lambda e: e.update(colour="blue"), "102", "Bundle.entry[1].resource.colour"),
        (
            lambda e: e.update(
                contained=[{"resourceType": "Patient", "id": "p", "birthDate": "1.1.80"}]
            ),
            "102",
            "Bundle.entry[1].resource.contained[0].birthDate",
        ),
        (  # the models fault (KeyError) on an unknown contained type: found by its path
            lambda e: e.update(
                # DeviceUseStatement is R4 (R4B) only, Transport R5 only: the models are R4B
                contained=[
                    {"resourceType": "DeviceUseStatement", "id": "p"},
                    {"resourceType": "Transport", "id": "n"},
                ]
            ),
            "103",
            "Bundle.entry[1].resource.contained[1].resourceType",
        ),
        (
            lambda e: e.update(contained=[{"resourceType": 7, "id": "n"}]),
            "102",
            "Bundle.entry[1].resource.contained[0].resourceType",
        ),
    ],
)
def test_an_invalid_resource_is_refused_at_its_element_path(
    change: Callable[[dict[str, Any]], object], code: str, location: str
) -> None:
    bundle = base()
    change(resource(bundle, "Encounter"))
    error = rejection(bundle)
    assert (error.code, error.location) == (code, location)


def test_an_invalid_bundle_element_is_refused_at_its_path() -> None:
    bundle = base()
    bundle["timestamp"] = "yesterday"
    error = rejection(bundle)
    assert (error.code, error.location) == ("102", "Bundle.timestamp")


def test_a_message_bundle_starts_with_its_header() -> None:
    bundle = base()
    bundle["entry"].reverse()
    error = rejection(bundle)
    assert (error.code, error.location) == ("100", "Bundle.entry[0].resource")


@pytest.mark.parametrize("bundle_type", ["searchset", "collection", "document", "history"])
def test_other_bundle_types_are_refused(bundle_type: str) -> None:
    bundle = base()
    bundle["type"] = bundle_type
    error = rejection(bundle)
    assert (error.code, error.location) == ("200", "Bundle.type")


def test_a_patient_on_its_own_is_not_a_care_event() -> None:
    error = rejection(resource(base(), "Patient"))
    assert (error.code, error.location) == ("200", "resourceType")


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b'{"resourceType": "Bundle",', "line 1 column 27"),
        (b'{"resourceType":\n "Bundle" "type"}', "line 2 column 11"),
        (b"\xff\xfe{}", "line 1 column 1"),
    ],
)
def test_not_json_is_refused_with_where(raw: bytes, location: str) -> None:
    error = rejection(raw)
    assert (error.code, error.location) == ("102", location)
    assert error.reason.startswith("not valid JSON")


def test_json_that_is_not_an_object_is_refused() -> None:
    assert rejection(b"[1, 2]").code == "102"


def test_a_byte_order_mark_is_accepted() -> None:
    assert map_fhir(b"\xef\xbb\xbf" + orjson.dumps(base()), MH).kind is EventKind.ADMISSION


def test_deep_nesting_is_refused_quickly() -> None:
    # 1,000 levels: within orjson's own limit (1,024), so our walk is what refuses it
    nested = b"[" * 1000 + b"]" * 1000
    raw = orjson.dumps(base()).replace(b'"gender":"female"', b'"gender":' + nested)
    start = time.perf_counter()
    error = rejection(raw)
    assert time.perf_counter() - start < 0.5
    assert (error.code, error.reason) == ("102", "JSON nested deeper than 64 levels")


def test_nesting_beyond_the_json_parsers_own_limit_is_refused_too() -> None:
    error = rejection(b"[" * 100_000 + b"]" * 100_000)
    assert error.reason == "JSON nested deeper than 64 levels"


def test_a_bundle_of_100k_entries_is_refused_quickly_before_any_model() -> None:
    bundle = base()
    bundle["entry"] = [{"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000000"}] * 100_000
    raw = orjson.dumps(bundle)
    start = time.perf_counter()
    error = rejection(raw)
    assert time.perf_counter() - start < 1.0
    assert (error.code, error.location) == ("102", "Bundle.entry")
    assert "at most 1,000" in error.reason


def test_an_oversized_message_is_refused_before_parsing() -> None:
    error = rejection(b"{" + b" " * MAX_BYTES + b"}")
    assert error.code == "102"
    assert "bytes" in error.reason


def test_unread_resources_are_not_validated() -> None:
    bundle = base()
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000f9",
            "resource": {"resourceType": "Condition", "onsetDateTime": "not a date"},
        }
    )
    assert run(bundle).kind is EventKind.ADMISSION


# --- the single entry point ----------------------------------------------------------------


def test_map_message_dispatches_fhir_json_to_map_fhir() -> None:
    event = map_message(orjson.dumps(base()), MH)
    assert event.source.format.value == "fhir"
    assert event.kind is EventKind.ADMISSION
