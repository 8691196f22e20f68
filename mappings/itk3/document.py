"""The discharge as an ITK3 Transfer of Care FHIR STU3 document (ITK-Document-Bundle-1): a
Composition with the PRSB headings the eDischarge specifications make mandatory, the Patient,
the Encounter, the organisations and the responsible clinician.

What an ADT feed tells is all the engine knows: the document carries the discharge (when, from
where, to where, how, legal status, responsible clinician, follow-up due, risk flags) and says
plainly, in the sections an ADT message cannot fill (clinical summary, allergies), that they
are not held here. Headings and codes: nhsconnect/ITK-FHIR-Mental-Health-eDischarge (gh-pages)
``pages/explore/explore_headings.md``, ``explore_document_profiles.md`` (docs/mesh.md).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from mappings.clinical.follow_up.rules import FollowUp
from mappings.clinical.notification.facts import display_name, legal_status_at_discharge
from mappings.fhir.vocabulary import NOT_REAL_NHS_NUMBER_SYSTEM
from mappings.itk3.xml import add, coding, identifier, narrative, profile, reference
from mappings.model import NHS_NUMBER_SYSTEM, ODS_ORGANISATION_SYSTEM, CareEvent, Clinician

SNOMED: Final = "http://snomed.info/sct"
UUID_SYSTEM: Final = "https://tools.ietf.org/html/rfc4122"
CARECONNECT: Final = "https://fhir.hl7.org.uk/STU3/StructureDefinition/"
NHS_STU3: Final = "https://fhir.nhs.uk/STU3/StructureDefinition/"
GP_NOT_KNOWN: Final = "V81999"
"""The ODS code ToC documents carry when the GP practice is not known (build_mesh.md)."""
_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://carebridge.nhs.uk/itk3/")

SECTIONS: Final = {
    "patient": ("886731000000109", "Patient demographics"),
    "gp": ("886711000000101", "GP practice"),
    "discharge": ("886811000000106", "Discharge details"),
    "legal": ("886961000000102", "Legal information"),
    "plan": ("887201000000105", "Plan and requested actions"),
    "safety": ("886931000000107", "Safety alerts"),
    "summary": ("887181000000106", "Clinical summary"),
    "allergies": ("886921000000105", "Allergies and adverse reactions"),
    "completing": ("887231000000104", "Person completing record"),
}
"""PRSB headings (SNOMED CT) of the eDischarge Composition, in the order written."""
NOT_HELD: Final = (
    "Not held by the discharging trust's patient administration feed that sent this "
    "document: see the trust's full discharge summary."
)


def uid(key: str, role: str) -> str:
    """A version-5 UUID for one part of one document or message: the same on every render."""
    return str(uuid.uuid5(_NAMESPACE, f"{key}/{role}"))


@dataclass(frozen=True, slots=True)
class Document:
    """What a document is made of besides the event: its texts and who sends it."""

    composition_profile: str
    title: str
    sender_ods: str
    gp_ods: str
    lines: tuple[str, ...]
    """The discharge as the notification text reads, one line each."""
    follow_up: FollowUp | None
    now: datetime
    replaces: str | None = None
    """For a withdrawal: the event id of the discharge whose document it withdraws."""


def document_bundle(parent: ET.Element, event: CareEvent, doc: Document) -> str:
    """Write the document Bundle into `parent`; its id (the message's focus)."""
    key = event.event_id
    bundle_id = uid(key, "document")
    bundle = add(parent, "Bundle")
    add(bundle, "id", bundle_id)
    profile(bundle, NHS_STU3 + "ITK-Document-Bundle-1")
    identifier(bundle, UUID_SYSTEM, bundle_id)
    add(bundle, "type", "document")
    _composition(_entry(bundle, uid(key, "composition"), "Composition"), event, doc)
    _patient(_entry(bundle, uid(key, "patient"), "Patient"), event, doc)
    _encounter(_entry(bundle, uid(key, "encounter"), "Encounter"), event)
    _organisation(_entry(bundle, uid(key, "sender"), "Organization"), doc.sender_ods)
    _organisation(_entry(bundle, uid(key, "gp"), "Organization"), doc.gp_ods)
    clinician = event.stay.responsible_clinician if event.stay else None
    if clinician is not None:
        _practitioner(_entry(bundle, uid(key, "clinician"), "Practitioner"), clinician)
    return bundle_id


def _entry(bundle: ET.Element, resource_id: str, kind: str) -> ET.Element:
    entry = add(bundle, "entry")
    add(entry, "fullUrl", f"urn:uuid:{resource_id}")
    resource = add(add(entry, "resource"), kind)
    add(resource, "id", resource_id)
    return resource


def _composition(c: ET.Element, event: CareEvent, doc: Document) -> None:
    key = event.event_id
    profile(c, doc.composition_profile)
    identifier(c, UUID_SYSTEM, uid(key, "composition"))
    add(c, "status", "entered-in-error" if doc.replaces else "final")
    kind = add(c, "type")
    coding(kind, "coding", SNOMED, "373942005", "Discharge summary")
    reference(c, "subject", f"urn:uuid:{uid(key, 'patient')}")
    reference(c, "encounter", f"urn:uuid:{uid(key, 'encounter')}")
    add(c, "date", _iso(doc.now))
    reference(c, "author", f"urn:uuid:{uid(key, 'sender')}")
    add(c, "title", doc.title)
    reference(c, "custodian", f"urn:uuid:{uid(key, 'sender')}")
    if doc.replaces:
        relates = add(c, "relatesTo")
        add(relates, "code", "replaces")
        identifier(relates, UUID_SYSTEM, uid(doc.replaces, "composition"), "targetIdentifier")
    for name, lines in _section_texts(event, doc).items():
        code, title = SECTIONS[name]
        section = add(c, "section")
        add(section, "title", title)
        coding(add(section, "code"), "coding", SNOMED, code, title)
        narrative(section, lines)


def _section_texts(event: CareEvent, doc: Document) -> dict[str, list[str]]:
    stay = event.stay
    patient = event.patient
    status = legal_status_at_discharge(stay) if stay else None
    flags = [f.display or f.code for f in stay.risk_flags] if stay else []
    follow_up = doc.follow_up
    plan = (
        [f"Follow-up ({follow_up.standard}) due by {_iso(follow_up.due_at)}: {follow_up.reason}"]
        if follow_up
        else ["No follow-up after discharge was started by the discharging trust's rules."]
    )
    return {
        "patient": [
            f"{display_name(patient)}, NHS number {patient.nhs_number}"
            + (
                f" (NOT A REAL PATIENT'S NUMBER: {patient.nhs_number_not_real})"
                if patient.nhs_number_not_real
                else ""
            ),
            f"Born {patient.birth_date.isoformat() if patient.birth_date else 'not recorded'}",
        ],
        "gp": [
            f"GP practice {doc.gp_ods}"
            if doc.gp_ods != GP_NOT_KNOWN
            else "GP practice not known (V81999)"
        ],
        "discharge": list(doc.lines),
        "legal": [
            f"Legal status at discharge: {status.code.display or status.code.code}"
            if status
            else "Legal status at discharge: not recorded"
        ],
        "plan": plan,
        "safety": [f"Risk flags: {', '.join(flags)}" if flags else "Risk flags: none recorded"],
        "summary": [NOT_HELD],
        "allergies": [NOT_HELD],
        "completing": [f"Sent by the discharging organisation {doc.sender_ods} (Carebridge)"],
    }


def _patient(p: ET.Element, event: CareEvent, doc: Document) -> None:
    patient = event.patient
    profile(p, CARECONNECT + "CareConnect-Patient-1")
    if patient.nhs_number:
        # a number that is not a real patient's is never given as an NHS number (issue 13)
        system = NOT_REAL_NHS_NUMBER_SYSTEM if patient.nhs_number_not_real else NHS_NUMBER_SYSTEM
        identifier(p, system, patient.nhs_number)
    for name in patient.names[:1]:
        element = add(p, "name")
        add(element, "use", "official")
        if name.family:
            add(element, "family", name.family)
        for given in name.given:
            add(element, "given", given)
    if patient.gender is not None:
        add(p, "gender", patient.gender.value)
    if patient.birth_date is not None:
        add(p, "birthDate", patient.birth_date.isoformat())
    reference(p, "generalPractitioner", f"urn:uuid:{uid(event.event_id, 'gp')}")


def _encounter(e: ET.Element, event: CareEvent) -> None:
    stay = event.stay
    profile(e, NHS_STU3 + "CareConnect-ITK-Encounter-1")
    add(e, "status", "finished")
    coding(e, "class", "http://hl7.org/fhir/v3/ActCode", "IMP", "inpatient encounter")
    reference(e, "subject", f"urn:uuid:{uid(event.event_id, 'patient')}")
    if stay and stay.responsible_clinician is not None:
        participant = add(e, "participant")
        coding(add(participant, "type"), "coding",
               "http://hl7.org/fhir/v3/ParticipationType", "DIS", "discharger")  # fmt: skip
        reference(participant, "individual", f"urn:uuid:{uid(event.event_id, 'clinician')}")
    left = (stay.discharged_at if stay else None) or event.occurred_at
    if stay and (stay.admitted_at or left):
        period = add(e, "period")
        if stay.admitted_at:
            add(period, "start", _iso(stay.admitted_at.utc))
        if left:
            add(period, "end", _iso(left.utc))
    hospitalisation = add(e, "hospitalization")
    if stay and stay.discharge_method:  # extensions come first in FHIR XML
        m = stay.discharge_method
        ext = add(hospitalisation, "extension",
                  url=CARECONNECT + "Extension-CareConnect-DischargeMethod-1")  # fmt: skip
        coding(add(ext, "valueCodeableConcept"), "coding", m.system, m.code, m.display)
    if stay and stay.discharge_destination:
        d = stay.discharge_destination
        coding(add(hospitalisation, "dischargeDisposition"), "coding", d.system, d.code, d.display)


def _organisation(o: ET.Element, ods: str) -> None:
    profile(o, CARECONNECT + "CareConnect-Organization-1")
    identifier(o, ODS_ORGANISATION_SYSTEM, ods)


def _practitioner(p: ET.Element, clinician: Clinician) -> None:
    profile(p, CARECONNECT + "CareConnect-Practitioner-1")
    if clinician.code:
        identifier(p, "https://fhir.nhs.uk/Id/sds-user-id", clinician.code)
    if clinician.family or clinician.given:
        name = add(p, "name")
        if clinician.family:
            add(name, "family", clinician.family)
        if clinician.given:
            add(name, "given", clinician.given)
        if clinician.prefix:
            add(name, "prefix", clinician.prefix)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
