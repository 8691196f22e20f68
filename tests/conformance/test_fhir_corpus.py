"""The FHIR corpus (``../shared/corpus/fhir``): every file maps or is refused with a precise
reason, and what maps renders back to FHIR that reads as the same event.

The outcome table is explicit, so any change in behaviour fails a test until the table (and
docs/mapping.md (FHIR part)) is updated. The corpus lives outside the repository: these tests are
skipped when it is absent; ``CAREBRIDGE_CORPUS`` points them at another copy. To see the table
as it is now::

    .venv/bin/python -m tests.conformance.test_fhir_corpus
"""

from __future__ import annotations

import csv
import os
from functools import cache
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from mappings.errors import MappingError
from mappings.fhir.inbound import map_fhir
from mappings.fhir.outbound import render_fhir_message
from mappings.model import CareEvent
from mappings.profile import FeedProfile

CORPUS = Path(
    os.environ.get("CAREBRIDGE_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
)
PROFILE = FeedProfile(feed="corpus")

pytestmark = pytest.mark.skipif(
    not (CORPUS / "fhir").is_dir(), reason=f"FHIR corpus not found at {CORPUS / 'fhir'}"
)

_ALONE = (
    "rejected 200 resourceType: resource type {} on its own is not a care event: send an "
    "Encounter, or a message, transaction or batch Bundle"
)
_OUTSIDE = (
    "rejected 101 Encounter.subject: the patient is not in the message and the reference has "
    "no identifier"
)
_BUNDLE_TYPE = (
    "rejected 200 Bundle.type: Bundle type {} is not supported: send a message, transaction or "
    "batch Bundle"
)
_FOCUS = (
    "rejected 200 Bundle.entry[0].resource.focus: MessageHeader.focus names {}, not an "
    "Encounter or a Patient: only encounter and patient events are mapped"
)
_PATIENT_LINK = (
    "rejected 201 Bundle.entry[0].resource.eventCoding: MessageHeader event patient-link is not "
    "one Carebridge maps, and the message has no Encounter"
)

# Every file under corpus/fhir, relative to it: "maps <event kind>" or
# "rejected <HL7 error code> <location>: <reason>".
OUTCOMES: dict[str, str] = {
    # Da Vinci notifications: their MessageHeader event codes are read (admit, transfer,
    # discharge); the admits say in-progress with a period end, which is warned about.
    "davinci-notifications/admit-notification-intermediate-translate-bundle.json": "maps admission",
    "davinci-notifications/admit-notification-intermediate-transmit-bundle.json": "maps admission",
    "davinci-notifications/admit-notification-message-bundle-01.json": "maps admission",
    "davinci-notifications/admit-notification-message-bundle-02.json": "maps admission",
    "davinci-notifications/discharge-notification-message-bundle-01.json": "maps discharge",
    "davinci-notifications/transfer-notification-message-bundle-01.json": "maps transfer",
    # FHIR messaging examples: a patient-link request and its response (no Encounter, not an
    # event we map: link is not merge).
    "hl7-fhir-r4-examples/Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json": _PATIENT_LINK,
    "hl7-fhir-r4-examples/Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json": _PATIENT_LINK,
    "hl7-fhir-r4-examples/Bundle-bundle-response.json": _BUNDLE_TYPE.format("transaction-response"),
    "hl7-fhir-r4-examples/Bundle-bundle-transaction.json": (
        "rejected 101 Bundle.entry: no Encounter in the message, which an encounter event needs"
    ),
    # The spec's Encounter examples point at Patient/example on a server: not in the message,
    # no identifier in the reference, so no one to route to.
    "hl7-fhir-r4-examples/Encounter-emerg.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-example.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-f001.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-f002.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-f003.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-f201.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-f202.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-f203.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-home.json": _OUTSIDE,
    "hl7-fhir-r4-examples/Encounter-xcda.json": _OUTSIDE,
    "hl7-fhir-r4-examples/EpisodeOfCare-example.json": _ALONE.format("EpisodeOfCare"),
    "hl7-fhir-r4-examples/Location-1.json": _ALONE.format("Location"),
    "hl7-fhir-r4-examples/MessageHeader-1cbdfb97-5859-48a4-8301-d54eab818d68.json": _ALONE.format(
        "MessageHeader"
    ),
    "hl7-fhir-r4-examples/Patient-ch-example.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-dicom.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-example.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-f001.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-f201.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-glossy.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-infant-twin-1.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-mom.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-newborn.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-pat1.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-pat2.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-pat3.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-pat4.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/Patient-xcda.json": _ALONE.format("Patient"),
    "hl7-fhir-r4-examples/RelatedPerson-peter.json": _ALONE.format("RelatedPerson"),
    # The v2-to-FHIR IG sample is not valid R4: an OID with colons as MessageHeader id type.
    "hl7-v2-to-fhir/FHIR_bundle.hl7_ADT_A01.json": (
        "rejected 102 Bundle.entry[11].resource.response.identifier: String should match "
        "pattern '^[A-Za-z0-9\\-.]+$'"
    ),
    # BaRS messages are referrals and bookings, not encounter events.
    "nhsdigital-bars-fhir-api/Booking-POST.json": _FOCUS.format("Appointment"),
    "nhsdigital-bars-fhir-api/ValidationRequest-POST.json": _FOCUS.format("ServiceRequest"),
    "nhsdigital-pds-fhir-api/Minimal_Patient.json": _ALONE.format("Patient"),
    "nhsdigital-pds-fhir-api/Patient.json": _ALONE.format("Patient"),
    "nhsdigital-pds-fhir-api/PatientCompoundName.json": _BUNDLE_TYPE.format("searchset"),
    "nhsdigital-pds-fhir-api/Sensitive_Patient.json": _ALONE.format("Patient"),
}


def files() -> list[str]:
    """Every JSON file under corpus/fhir, relative to it."""
    return sorted(str(p.relative_to(CORPUS / "fhir")) for p in (CORPUS / "fhir").rglob("*.json"))


def indexed() -> list[str]:
    """The FHIR files INDEX.tsv lists, relative to fhir/."""
    with (CORPUS / "INDEX.tsv").open(encoding="utf-8") as rows:
        return sorted(
            row["path"].removeprefix("fhir/")
            for row in csv.DictReader(rows, delimiter="\t")
            if row["path"].startswith("fhir/")
        )


@cache
def outcome(file: str) -> tuple[str, CareEvent | None]:
    try:
        event = map_fhir((CORPUS / "fhir" / file).read_bytes(), PROFILE)
    except MappingError as error:
        return f"rejected {error.code} {error}", None
    return f"maps {event.kind.value}", event


def mapped() -> list[str]:
    return [file for file, text in OUTCOMES.items() if text.startswith("maps ")]


def test_the_outcome_table_lists_exactly_the_corpus_fhir_files() -> None:
    assert files() == sorted(OUTCOMES)
    assert indexed() == files()


@pytest.mark.parametrize("file", sorted(OUTCOMES))
def test_each_file_maps_or_is_rejected_with_its_reason(file: str) -> None:
    assert outcome(file)[0] == OUTCOMES[file]


@pytest.mark.parametrize("file", mapped())
def test_what_maps_renders_to_valid_fhir_that_reads_back_as_the_same_event(file: str) -> None:
    event = outcome(file)[1]
    assert event is not None
    bundle = render_fhir_message(event)
    Bundle.model_validate(bundle)
    back = map_fhir(orjson.dumps(bundle), PROFILE)
    assert back.kind is event.kind
    assert back.patient.identifiers == event.patient.identifiers
    assert back.stay is not None
    assert event.stay is not None
    # the same stay, apart from the text its instants are written in
    same_times = {"admitted_at": back.stay.admitted_at, "discharged_at": back.stay.discharged_at}
    assert back.stay == event.stay.model_copy(update=same_times)


def test_the_discharge_notification_keeps_its_us_disposition_code_under_its_own_system() -> None:
    event = outcome("davinci-notifications/discharge-notification-message-bundle-01.json")[1]
    assert event is not None
    assert event.stay is not None
    assert event.stay.discharge_destination is not None
    assert event.stay.discharge_destination.system == (
        "http://terminology.hl7.org/CodeSystem/nubc-UB92"
    )
    assert event.stay.discharged_at is not None
    assert event.occurred_at == event.stay.discharged_at


def report() -> str:
    """The outcome table as text for people."""
    return "\n".join(["Outcomes:", *(f"  {file}: {outcome(file)[0]}" for file in files())])


if __name__ == "__main__":
    print(report())
