"""The FHIR vocabulary both directions share: Carebridge's code systems and extension URLs,
the UK Core and HL7 ones the mapping reads and writes, `EVENT_CODES` and `CLASS_TO_ACT`.

Both `mappings.fhir.outbound` (which writes them) and the inbound readers import them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from mappings.model import EventKind

# --- the vocabulary shared by both directions -----------------------------------------------

CARE_EVENT_SYSTEM: Final = "https://carebridge.nhs.uk/CodeSystem/care-event"
"""Carebridge's MessageHeader event codes: one per `EventKind` (`EVENT_CODES`)."""
EVENT_OCCURRED_URL: Final = "https://carebridge.nhs.uk/StructureDefinition/Extension-EventOccurred"
"""MessageHeader extension (valueDateTime): when the event happened (HL7 EVN-6)."""
LEAVE_EXPECTED_RETURN_URL: Final = (
    "https://carebridge.nhs.uk/StructureDefinition/Extension-LeaveExpectedReturn"
)
"""Encounter extension (valueDateTime): when a patient on leave is expected back (PV2-47)."""
LEGAL_STATUS_PERIOD_URL: Final = (
    "https://carebridge.nhs.uk/StructureDefinition/Extension-LegalStatusPeriod"
)
"""Sub-extension (valuePeriod) of the UK Core legal status: when that status applied."""
TRANSITION_SYSTEM: Final = "https://carebridge.nhs.uk/CodeSystem/transition"
"""Transition flags of a discharge: ``to_adult_services``, ``out_of_area``."""
TRANSITION_URL: Final = "https://carebridge.nhs.uk/StructureDefinition/Extension-Transition"
"""Encounter extension (valueCodeableConcept, `TRANSITION_SYSTEM`): a transition of care."""
POINT_OF_CARE_SYSTEM: Final = "https://carebridge.nhs.uk/Id/point-of-care"
"""Location identifier for the HL7 point of care (PL.1), which FHIR has no element for."""
LOCAL_IDENTIFIER_PREFIX: Final = "https://carebridge.nhs.uk/Id/assigning-authority/"
NOT_REAL_NHS_NUMBER_SYSTEM: Final = "https://carebridge.nhs.uk/Id/nhs-number-not-real"
"""A valid NHS number that cannot be a real patient's (placeholder, test range, not issued):
sent under this system, never https://fhir.nhs.uk/Id/nhs-number, and with no verification
status, so no receiver takes it for a verified NHS number."""
"""Identifier system for an identifier whose authority is a name (``RXT``), not a URI."""
LEGAL_STATUS_CONTEXT_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusContext"
LEGAL_STATUS_WALES: Final = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationWales"
)
CURRENT_CONTEXT_SYSTEM: Final = "https://carebridge.nhs.uk/CodeSystem/legal-status-context"
"""UK Core's context list has only admission and discharge; ``current`` is ours."""

_UKCORE: Final = "https://fhir.hl7.org.uk/StructureDefinition/"
NHS_NUMBER_VERIFICATION_URL: Final = _UKCORE + "Extension-UKCore-NHSNumberVerificationStatus"
NHS_NUMBER_VERIFICATION_SYSTEM: Final = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
ADMISSION_METHOD_URL: Final = _UKCORE + "Extension-UKCore-AdmissionMethod"
DISCHARGE_METHOD_URL: Final = _UKCORE + "Extension-UKCore-DischargeMethod"
LEGAL_STATUS_URL: Final = _UKCORE + "Extension-UKCore-LegalStatus"
ETHNIC_CATEGORY_URL: Final = _UKCORE + "Extension-UKCore-EthnicCategory"
GMC_NUMBER_SYSTEM: Final = "https://fhir.hl7.org.uk/Id/gmc-number"
GMP_NUMBER_SYSTEM: Final = "https://fhir.hl7.org.uk/Id/gmp-number"
IDENTIFIER_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NULL_FLAVOR_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
PHYSICAL_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/location-physical-type"
CONFIDENTIALITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PARTICIPATION_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
DAVINCI_EVENT_SYSTEM: Final = "http://hl7.org/fhir/us/davinci-alerts/CodeSystem/notification-event"
V2_EVENT_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0003"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
NHS_NUMBER_OID: Final = "urn:oid:2.16.840.1.113883.2.1.4.1"

EVENT_CODES: Final[Mapping[EventKind, str]] = {k: k.value.replace("_", "-") for k in EventKind}
"""The `CARE_EVENT_SYSTEM` code of each kind of event (``leave-start``, ``cancel-discharge``)."""
KIND_BY_CODE: Final[Mapping[str, EventKind]] = {code: kind for kind, code in EVENT_CODES.items()}
"""The kind of event each `CARE_EVENT_SYSTEM` code names."""
DAVINCI_KINDS: Final[Mapping[str, EventKind]] = {
    "notification-admit": EventKind.ADMISSION,
    "notification-transfer": EventKind.TRANSFER,
    "notification-discharge": EventKind.DISCHARGE,
}
"""The kind of event each Da Vinci notification code (`DAVINCI_EVENT_SYSTEM`) names."""
SNOMED_EVENT_KINDS: Final[Mapping[str, EventKind]] = {
    "306689006": EventKind.DISCHARGE,  # Discharge to home (UK Core's example MessageHeader)
    "58000006": EventKind.DISCHARGE,  # Patient discharge
}
"""SNOMED CT MessageHeader events read as a discharge, so the Encounter can be checked
against them; other SNOMED codes leave the Encounter's status to say what happened."""

# HL7 v2 patient class (table 0004) <-> FHIR Encounter.class (v3 ActCode), as the HL7 v2-to-FHIR
# IG maps them; other table 0004 codes travel under their own system.
CLASS_TO_ACT: Final[Mapping[str, tuple[str, str]]] = {
    "I": ("IMP", "inpatient encounter"),
    "E": ("EMER", "emergency"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
}
ACT_TO_CLASS: Final = {"IMP": "I", "ACUTE": "I", "NONAC": "I", "EMER": "E", "AMB": "O"} | {
    "PRENC": "P"
}
