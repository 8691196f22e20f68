"""HL7 v2 ADT admissions, transfers and discharges (A01, A02, A03; v2.1-2.8) as care events.

`map_hl7v2` reads the message with the fast reader, then maps MSH and EVN (where and when),
PID/PD1 (who: `hl7v2_patient`) and PV1 (the stay). What it cannot use it reports in
`CareEvent.warnings`; what makes the message meaningless (another message type or trigger,
no MSH-10, no PID or PV1, an invalid required timestamp) raises `MappingError` with the
element at fault and its HL7 table 0357 code, ready for an ACK's ERR segment.

When the event happened (`occurred_at`): EVN-6 (ITK requires it), else the stay's own time
for the event (PV1-44 admit on A01, PV1-45 discharge on A03), else EVN-2 (recorded), else
MSH-7 (sent); every fallback is noted in the warnings. `recorded_at` is EVN-2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from mappings.codes import (
    ADMISSION_METHOD_ENGLAND,
    ADMISSION_METHODS,
    DISCHARGE_DESTINATION_ENGLAND,
    DISCHARGE_DESTINATIONS,
    DISCHARGE_METHOD_ENGLAND,
    DISCHARGE_METHODS,
    HL7_PATIENT_CLASS,
    PATIENT_CLASSES,
    SOURCE_OF_ADMISSION_ENGLAND,
    SOURCES_OF_ADMISSION,
    TREATMENT_FUNCTION,
    local_system,
)
from mappings.errors import MappingError
from mappings.hl7v2_patient import map_patient
from mappings.hl7v2_reader import Segment, parse
from mappings.hl7v2_types import Reading, clean, read_clinician, read_code, read_instant
from mappings.hl7v2_types import read_location as read_pl
from mappings.model import (
    CareEvent,
    CareSetting,
    Coding,
    EventKind,
    Instant,
    MessageFormat,
    MessageSource,
    Stay,
    StayStatus,
)
from mappings.profile import FeedProfile, event_id

__all__ = ["SUPPORTED_TRIGGERS", "map_hl7v2"]


@dataclass(frozen=True, slots=True)
class _Event:
    kind: EventKind
    status: StayStatus
    stay_time: int | None
    """The PV1 field holding this event's own time (44 admit, 45 discharge), if any."""


SUPPORTED_TRIGGERS: dict[str, _Event] = {
    "A01": _Event(EventKind.ADMISSION, StayStatus.ACTIVE, 44),
    "A02": _Event(EventKind.TRANSFER, StayStatus.ACTIVE, None),
    "A03": _Event(EventKind.DISCHARGE, StayStatus.FINISHED, 45),
}
_VERSION = re.compile(r"2\.[1-8](?:\.\d+)*")
_MENTAL_HEALTH_FUNCTIONS = range(700, 730)


def map_hl7v2(raw: bytes | str, profile: FeedProfile) -> CareEvent:
    """Map one HL7 v2 ADT A01/A02/A03 to a care event, or raise `MappingError` saying why not."""
    message = parse(raw)
    msh = message.msh
    reading = Reading(feed=profile.feed, zone=_zone(profile.timezone))
    reading.warnings.extend(message.warnings)
    evn = message.segment("EVN")
    trigger = _trigger(msh, evn)
    event = SUPPORTED_TRIGGERS[trigger]
    message_id = clean(msh.value(10))
    if message_id is None:
        raise MappingError("message control id missing", location="MSH-10", code="101")
    source = _source(msh, trigger, profile, reading)
    pv1 = message.segment("PV1")
    if pv1 is None:
        raise MappingError(f"PV1 segment missing from an {trigger}", location="PV1", code="100")
    if evn is None:
        reading.warn("EVN", "segment missing")
    recorded_at = read_instant(reading, evn.value(2), "EVN-2", required=True) if evn else None
    stay = _stay(pv1, msh, event, trigger, profile, reading)
    occurred_at = _occurred_at(evn, stay, event, recorded_at, source, reading)
    patient = map_patient(message, reading)
    # A transfer moves from PV1-6 to PV1-3; an admission arrives at PV1-3; a discharge
    # leaves PV1-3.
    here = stay.location
    came_from = read_pl(pv1.field(6)) if trigger == "A02" else None
    return CareEvent(
        event_id=event_id(profile.feed, message_id),
        kind=event.kind,
        trigger=trigger,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
        source=source,
        patient=patient,
        stay=stay,
        location_from=here if trigger == "A03" else came_from,
        location_to=None if trigger == "A03" else here,
        warnings=tuple(reading.warnings),
    )


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _shown(code: str) -> str:
    """A sender's code for an error reason: short codes as sent, anything else not echoed."""
    return code if 0 < len(code) <= 10 else "(none)" if not code else "(unreadable)"


def _trigger(msh: Segment, evn: Segment | None) -> str:
    message_type = msh.value(9).strip().upper()
    if message_type != "ADT":
        raise MappingError(
            f"message type {_shown(message_type)} is not supported", location="MSH-9.1", code="200"
        )
    trigger, location = msh.value(9, 2).strip().upper(), "MSH-9.2"
    if not trigger and evn is not None:
        # v2.1/2.2 senders put the event code only in EVN-1.
        trigger, location = evn.value(1).strip().upper(), "EVN-1"
    if not trigger:
        raise MappingError("trigger event missing", location="MSH-9.2", code="101")
    if trigger not in SUPPORTED_TRIGGERS:
        raise MappingError(
            f"trigger event {_shown(trigger)} is not supported", location=location, code="201"
        )
    return trigger


def _source(msh: Segment, trigger: str, profile: FeedProfile, reading: Reading) -> MessageSource:
    version = msh.value(12).strip()
    if not version:
        reading.warn("MSH-12", "version id missing; read as HL7 v2")
    elif not _VERSION.fullmatch(version):
        raise MappingError(
            f"version {_shown(version)} is not supported", location="MSH-12", code="203"
        )
    sent_at = read_instant(reading, msh.value(7), "MSH-7", required=True)
    if sent_at is None:
        reading.warn("MSH-7", "message date/time missing")
    return MessageSource(
        feed=profile.feed,
        format=MessageFormat.HL7V2,
        message_id=msh.value(10).strip(),
        system=clean(msh.value(3)) or clean(msh.value(3, 2)),
        facility_ods=clean(msh.value(4)),
        message_type=f"ADT^{trigger}",
        version=version or None,
        profile=clean(msh.value(21)),
        sent_at=sent_at,
        sequence=clean(msh.value(13)),
    )


def _stay(
    pv1: Segment,
    msh: Segment,
    event: _Event,
    trigger: str,
    profile: FeedProfile,
    reading: Reading,
) -> Stay:
    specialty = _specialty(pv1.value(10), reading)
    admitted_at = read_instant(reading, pv1.value(44), "PV1-44", required=event.stay_time == 44)
    discharged_at = read_instant(reading, pv1.value(45), "PV1-45", required=event.stay_time == 45)
    if trigger == "A03" and discharged_at is None:
        reading.warn("PV1-45", "discharge date/time missing on a discharge")
    elif trigger != "A03" and discharged_at is not None:
        reading.warn("PV1-45", f"discharge date/time on an {trigger}")
    if admitted_at and discharged_at and discharged_at.utc < admitted_at.utc:
        reading.warn("PV1-45", "discharge is earlier than admission (PV1-44)")
    if trigger == "A02" and not pv1.field(6):
        reading.warn("PV1-6", "prior location missing on a transfer")
    location = read_pl(pv1.field(3))
    clinician_field = pv1.field(9) if pv1.field(9) else pv1.field(7)
    return Stay(
        id=clean(pv1.value(19)),
        episode_id=clean(pv1.value(50)),
        care_setting=_care_setting(profile.care_setting, specialty),
        patient_class=read_code(
            reading,
            pv1.value(2),
            "PV1-2",
            system=HL7_PATIENT_CLASS,
            known=PATIENT_CLASSES,
            what="patient class",
        ),
        status=event.status,
        provider_ods=clean(msh.value(4)),
        site_ods=location.facility if location else None,
        location=location,
        specialty=specialty,
        admitted_at=admitted_at,
        discharged_at=discharged_at,
        admission_method=read_code(
            reading,
            pv1.value(4),
            "PV1-4",
            system=ADMISSION_METHOD_ENGLAND,
            known=ADMISSION_METHODS,
            what="admission method",
        ),
        admission_source=read_code(
            reading,
            pv1.value(14),
            "PV1-14",
            system=SOURCE_OF_ADMISSION_ENGLAND,
            known=SOURCES_OF_ADMISSION,
            what="source of admission",
        ),
        # Legal status has no ITK field; ZU5's legacy codes need a per-feed map. Never
        # inferred: a missing legal status is not "informal".
        legal_status=(),
        responsible_clinician=read_clinician(clinician_field.first()),
        discharge_method=read_code(
            reading,
            pv1.value(36),
            "PV1-36",
            system=DISCHARGE_METHOD_ENGLAND,
            known=DISCHARGE_METHODS,
            what="discharge method",
        ),
        discharge_destination=read_code(
            reading,
            pv1.value(37),
            "PV1-37",
            system=DISCHARGE_DESTINATION_ENGLAND,
            known=DISCHARGE_DESTINATIONS,
            what="discharge destination",
        ),
    )


def _specialty(value: str, reading: Reading) -> Coding | None:
    code = value.strip()
    if not code:
        return None
    if len(code) == 3 and code.isdigit():
        return Coding(system=TREATMENT_FUNCTION, code=code)
    return Coding(system=local_system(reading.feed, "PV1-10"), code=code)


def _care_setting(configured: CareSetting, specialty: Coding | None) -> CareSetting:
    """The feed's care setting; a feed that does not say is mental health for a 7xx function."""
    if configured is not CareSetting.UNKNOWN or specialty is None:
        return configured
    if specialty.system == TREATMENT_FUNCTION and int(specialty.code) in _MENTAL_HEALTH_FUNCTIONS:
        return CareSetting.MENTAL_HEALTH
    return configured


def _occurred_at(
    evn: Segment | None,
    stay: Stay,
    event: _Event,
    recorded_at: Instant | None,
    source: MessageSource,
    reading: Reading,
) -> Instant | None:
    occurred = read_instant(reading, evn.value(6), "EVN-6", required=True) if evn else None
    if occurred is not None:
        return occurred
    stay_time = {44: stay.admitted_at, 45: stay.discharged_at}.get(event.stay_time or 0)
    for instant, location in (
        (stay_time, f"PV1-{event.stay_time}"),
        (recorded_at, "EVN-2"),
        (source.sent_at, "MSH-7"),
    ):
        if instant is not None:
            reading.warn("EVN-6", f"event date/time missing; taken from {location}")
            return instant
    reading.warn("EVN-6", "event date/time missing and nothing to take it from")
    return None
