"""The stay (hospital spell or community episode) of an HL7 v2 ADT message: PV1, PV2 and the
feed's local fields.

Codes are checked against the national lists (`mappings.codes`) after the feed's code tables
have had their say; a code that is in neither is kept under the feed's local system with a
warning, never relabelled as national (ITK table 0112's discharge "2" is not the NHS Data
Dictionary's discharge method "2", which no longer exists).
"""

from __future__ import annotations

from collections.abc import Mapping

from mappings.code_tables import CODED_ELEMENTS, load_code_labels, load_code_table
from mappings.codes import (
    DISCHARGE_METHOD_ENGLAND,
    HL7_PATIENT_CLASS,
    PATIENT_CLASSES,
    TREATMENT_FUNCTION,
    local_system,
)
from mappings.hl7v2.elements import Hl7Message, Segment
from mappings.hl7v2.events import AdtEvent
from mappings.hl7v2.mental_health import read_legal_status, read_risk_flags
from mappings.hl7v2.types import (
    Reading,
    clean,
    local_coding,
    model_factory,
    national_coding,
    read_clinician,
    read_code,
    read_instant,
)
from mappings.hl7v2.types import read_location as read_pl
from mappings.model import (
    CareSetting,
    Coding,
    EventKind,
    Instant,
    LegalStatus,
    LegalStatusContext,
    Location,
    Stay,
)
from mappings.profile import FeedProfile

__all__ = ["end_inpatient_spell", "map_stay", "movement"]

_STAY = model_factory(Stay)

_MENTAL_HEALTH_FUNCTIONS = range(700, 730)
ITK_0112 = load_code_table("itk-0112-discharge-method")
"""ITK table 0112 (PV1-36) to Data Dictionary discharge methods, for feeds that send it."""
ITK_0112_LABELS = load_code_labels("itk-0112-discharge-method")
# NHS Data Dictionary discharge method 2, split into 6 and 7 (MHSDS still accepts it where
# the detail is not collected): a feed sending "2" may mean this rather than ITK's GP follow-up.
_RETIRED_METHODS = {"2": "self-discharge or discharge by a relative or advocate"}
_LEGAL_STATUS_CONTEXT = {
    EventKind.ADMISSION: LegalStatusContext.ADMISSION,
    EventKind.DISCHARGE: LegalStatusContext.DISCHARGE,
}


def map_stay(
    message: Hl7Message,
    pv1: Segment,
    event: AdtEvent,
    trigger: str,
    profile: FeedProfile,
    reading: Reading,
) -> tuple[Stay, tuple[str, ...]]:
    """The stay, and the paths of its fields the sender deleted with ``""`` (local fields)."""
    specialty = _specialty(pv1.value(10), reading)
    admitted_at, discharged_at = _stay_times(pv1, event, trigger, reading)
    location = read_pl(pv1.field(3), profile.ward_component)
    clinician_field = pv1.field(9) if pv1.field(9) else pv1.field(7)
    tables = profile.code_tables
    legal_status, risk_flags, cleared = _mental_health(message, event, profile, reading)
    pv2 = message.segment("PV2")
    stay = _STAY(
        {
            "id": clean(pv1.value(19)),
            "episode_id": clean(pv1.value(50)),
            "care_setting": _care_setting(profile.care_setting, specialty),
            "patient_class": read_code(
                reading,
                pv1.value(2),
                "PV1-2",
                system=HL7_PATIENT_CLASS,
                known=PATIENT_CLASSES,
                what="patient class",
            ),
            "status": event.status,
            "provider_ods": clean(message.msh.value(4)),
            "site_ods": location.facility if location else None,
            "location": location,
            "specialty": specialty,
            "admitted_at": admitted_at,
            "discharged_at": discharged_at,
            "admission_method": _coded(pv1, 4, tables, reading),
            "admission_source": _coded(pv1, 14, tables, reading),
            "legal_status": legal_status,
            "responsible_clinician": read_clinician(clinician_field.first()),
            "discharge_method": _coded(pv1, 36, tables, reading) if event.reads_discharge else None,
            "discharge_destination": (
                _coded(pv1, 37, tables, reading) if event.reads_discharge else None
            ),
            "leave_expected_return": (
                read_instant(reading, pv2.value(47), "PV2-47") if pv2 is not None else None
            ),
            "risk_flags": risk_flags,
        }
    )
    return stay, cleared


def _stay_times(
    pv1: Segment, event: AdtEvent, trigger: str, reading: Reading
) -> tuple[Instant | None, Instant | None]:
    """Admitted and discharged (PV1-44/45), warning where they do not fit the trigger."""
    admitted_at = read_instant(reading, pv1.value(44), "PV1-44", required=event.stay_time == 44)
    discharged_at = (
        read_instant(reading, pv1.value(45), "PV1-45", required=event.stay_time == 45)
        if event.reads_discharge
        else None
    )
    if trigger == "A03" and discharged_at is None:
        reading.warn("PV1-45", "discharge date/time missing on a discharge")
    elif event.open_stay and discharged_at is not None:
        reading.warn("PV1-45", f"discharge date/time on an {trigger}, which does not end the stay")
    if admitted_at and discharged_at and discharged_at.utc < admitted_at.utc:
        reading.warn("PV1-45", "discharge is earlier than admission (PV1-44)")
    if trigger == "A02" and not pv1.field(6):
        reading.warn("PV1-6", "prior location missing on a transfer")
    return admitted_at, discharged_at


def _mental_health(
    message: Hl7Message, event: AdtEvent, profile: FeedProfile, reading: Reading
) -> tuple[tuple[LegalStatus, ...], tuple[Coding, ...], tuple[str, ...]]:
    """Legal status and risk flags, and which of the two the sender deleted with ``""``."""
    cleared: list[str] = []
    legal_status, legal_cleared = read_legal_status(
        message,
        profile,
        _LEGAL_STATUS_CONTEXT.get(event.kind, LegalStatusContext.CURRENT),
        reading,
    )
    if legal_cleared:
        cleared.append("stay.legal_status")
    risk_flags, flags_cleared = read_risk_flags(message, profile, reading)
    if flags_cleared:
        cleared.append("stay.risk_flags")
    return legal_status, risk_flags, tuple(cleared)


def end_inpatient_spell(
    stay: Stay, ward: Location | None, occurred_at: Instant | None, reading: Reading
) -> tuple[Stay, Location | None]:
    """The stay an A07 ends: the *inpatient* spell, on its ward, ended when the event occurred;
    and where the patient leaves from.

    PV1-2 and PV1-3 on an A07 are the patient's new class and location (outpatient). The stay
    the care event describes, and that is notified and followed up, is the inpatient one that
    ended: class inpatient, on the ward in PV1-6 (the prior location), which is where the
    patient leaves from; the outpatient location is not part of it (noted, not mapped). It
    ended when the change happened: EVN-6 (else the usual fallbacks of `occurred_at`: PV1-45,
    EVN-2, MSH-7, each with its warning).
    """
    new_class = stay.patient_class
    if new_class is not None and new_class.code != "I":
        reading.warn("PV1-2", f"new patient class {new_class.code!r} after the A07; the stay that"
                     " ended is the inpatient one")  # fmt: skip
    update: dict[str, object] = {
        "patient_class": Coding(system=HL7_PATIENT_CLASS, code="I", display="Inpatient"),
        "discharged_at": occurred_at or stay.discharged_at,
    }
    sent = stay.discharged_at
    if sent is not None and occurred_at is not None and sent.utc != occurred_at.utc:
        reading.warn("PV1-45", "differs from EVN-6; the inpatient spell ends when the A07 occurred")
    if ward is not None:
        update.update(location=ward, site_ods=ward.facility)
        if stay.location is not None:
            reading.warn("PV1-3", "the outpatient location after the A07 is not part of the"
                         " inpatient stay; not mapped")  # fmt: skip
    elif stay.location is not None:
        reading.warn("PV1-6", "prior location missing on an A07; PV1-3 is taken as the ward")
    ended = stay.model_copy(update=update)
    return ended, ended.location


def movement(
    pv1: Segment, event: AdtEvent, stay: Stay, profile: FeedProfile
) -> tuple[Location | None, Location | None]:
    """Where the event moves the patient from and to (PV1-3 assigned, PV1-6 prior location)."""

    def location(number: int | None) -> Location | None:
        if number == 3:
            return stay.location  # already read
        return read_pl(pv1.field(number), profile.ward_component) if number else None

    return location(event.moves_from), location(event.moves_to)


_PV1_CODED = {
    4: "admission_method",
    14: "admission_source",
    36: "discharge_method",
    37: "discharge_destination",
}


def _coded(
    pv1: Segment, number: int, tables: Mapping[str, Mapping[str, str]], reading: Reading
) -> Coding | None:
    element = CODED_ELEMENTS[_PV1_CODED[number]]
    coding = read_code(
        reading,
        pv1.value(number),
        f"PV1-{number}",
        system=element.system,
        known=element.known,
        what=element.what,
        table=tables.get(element.name),
    )
    if number != 36 or coding is None:
        return coding
    return _itk_disposition(pv1.value(36).strip(), coding, tables.get(element.name), reading)


def _itk_disposition(
    sent: str, coding: Coding, table: Mapping[str, str] | None, reading: Reading
) -> Coding:
    """PV1-36 as ITK table 0112 words it, where the national list cannot: a code outside the
    Data Dictionary's discharge methods keeps the sender's code with the ITK table's label
    (``2`` is "GP Follow Up" there, not "no description"); with the ITK table as the feed's
    code table, each translation is noted with the ITK wording."""
    label = ITK_0112_LABELS.get(sent)
    if label is None:
        return coding
    if coding.system != DISCHARGE_METHOD_ENGLAND and coding.display is None:
        display = f"ITK table 0112: {label}"
        if sent in _RETIRED_METHODS:  # the same code meant something else in the Dictionary
            display += f"; or, as the retired NHS discharge method {sent}: {_RETIRED_METHODS[sent]}"
        return coding.model_copy(update={"display": display})
    if table is not None and dict(table) == ITK_0112 and coding.code != sent:
        reading.warn(
            "PV1-36", f"ITK table 0112 {sent!r} ({label}) read as discharge method {coding.code!r}"
        )
    return coding


def _specialty(value: str, reading: Reading) -> Coding | None:
    code = value.strip()
    if not code:
        return None
    if len(code) == 3 and code.isascii() and code.isdigit():
        return national_coding(TREATMENT_FUNCTION, code)
    if len(code) == 3 and code.isdigit():  # other digits than ASCII's: not a national code
        return local_coding(TREATMENT_FUNCTION, code)
    return local_coding(local_system(reading.feed, "PV1-10"), code)


def _care_setting(configured: CareSetting, specialty: Coding | None) -> CareSetting:
    """The feed's care setting; a feed that does not say is mental health for a 7xx function."""
    if configured is not CareSetting.UNKNOWN or specialty is None:
        return configured
    if specialty.system == TREATMENT_FUNCTION and int(specialty.code) in _MENTAL_HEALTH_FUNCTIONS:
        return CareSetting.MENTAL_HEALTH
    return configured
