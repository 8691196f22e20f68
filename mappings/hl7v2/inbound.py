"""HL7 v2 ADT messages (v2.1-2.8) as care events.

`map_hl7v2` reads the message with the fast reader, finds what its trigger means
(`mappings.hl7v2.events`), then maps MSH and EVN (where and when), PID/PD1 (who:
`hl7v2_patient`), PV1/PV2 and the feed's local fields (the stay: `hl7v2_stay`) and, for a
merge, MRG. What it cannot use it reports in `CareEvent.warnings`; what makes the message
meaningless (another message type or trigger, no MSH-10, no PID, no PV1 where the trigger
needs one, an invalid required timestamp) raises `MappingError` with the element at fault and
its HL7 table 0357 code, ready for an ACK's ERR segment.

When the event happened (`occurred_at`): EVN-6 (ITK requires it), else the stay's own time
for the event (PV1-44 on an admission or registration, PV1-45 on a discharge), else EVN-2
(recorded), else MSH-7 (sent); every fallback is noted in the warnings. `recorded_at` is
EVN-2.

An empty field means "unchanged" and ``""`` means "delete the stored value" (ITK): both map
to an absent value, and the deletions are listed in `CareEvent.cleared`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo

from mappings.errors import MappingError
from mappings.hl7v2.elements import Hl7Message, Segment
from mappings.hl7v2.events import SUPPORTED_TRIGGERS, AdtEvent, trigger_name
from mappings.hl7v2.patient import map_merge, map_patient
from mappings.hl7v2.reader import parse
from mappings.hl7v2.stay import end_inpatient_spell, map_stay, movement
from mappings.hl7v2.types import Reading, clean, model_factory, read_instant
from mappings.model import (
    CareEvent,
    EventKind,
    Instant,
    Location,
    MessageFormat,
    MessageSource,
    Patient,
    Stay,
)
from mappings.profile import FeedProfile, event_id

__all__ = ["SUPPORTED_TRIGGERS", "map_hl7v2"]

_CARE_EVENT = model_factory(CareEvent)
_MESSAGE_SOURCE = model_factory(MessageSource)

_VERSION = re.compile(r"2\.[1-8](?:\.\d+)*")
_HL7_NULL = '""'
# Fields whose explicit null ("") deletes a model value, and that value's path, by segment.
_DELETABLE: dict[str, tuple[tuple[int, str], ...]] = {
    "PID": (
        (5, "patient.names"),
        (7, "patient.birth_date"),
        (8, "patient.gender"),
        (11, "patient.addresses"),
        (22, "patient.ethnic_category"),
        (29, "patient.deceased_at"),
    ),
    "PD1": ((3, "patient.gp_practice_ods"), (4, "patient.gp_code")),
    "PV1": (
        (3, "stay.location"),
        (4, "stay.admission_method"),
        (7, "stay.responsible_clinician"),
        (9, "stay.responsible_clinician"),
        (10, "stay.specialty"),
        (14, "stay.admission_source"),
        (36, "stay.discharge_method"),
        (37, "stay.discharge_destination"),
        (44, "stay.admitted_at"),
        (45, "stay.discharged_at"),
        (50, "stay.episode_id"),
    ),
    "PV2": ((47, "stay.leave_expected_return"),),
}


def map_hl7v2(raw: bytes | str, profile: FeedProfile) -> CareEvent:
    """Map one HL7 v2 ADT message to a care event, or raise `MappingError` saying why not."""
    message = parse(raw)
    msh = message.msh
    reading = Reading(
        feed=profile.feed,
        zone=_zone(profile.timezone),
        test_nhs_numbers=profile.nhs_numbers == "test",
        pid_2_nhs_number=profile.pid_2 == "nhs_number",
    )
    reading.warnings.extend(message.warnings)
    evn = message.segment("EVN")
    trigger = _trigger(msh, evn, reading)
    _check_single_segments(message, trigger)
    event = SUPPORTED_TRIGGERS[trigger]
    message_id = clean(msh.value(10))
    if message_id is None:
        raise MappingError("message control id missing", location="MSH-10", code="101")
    source = _source(msh, trigger, profile, reading)
    pv1 = message.segment("PV1")
    if pv1 is None and event.has_stay:
        raise MappingError(f"PV1 segment missing from an {trigger}", location="PV1", code="100")
    if evn is None:
        reading.warn("EVN", "segment missing")
    recorded_at = read_instant(reading, evn.value(2), "EVN-2", required=True) if evn else None
    stay: Stay | None = None
    cleared: tuple[str, ...] = ()
    location_from: Location | None = None
    location_to: Location | None = None
    if pv1 is not None and event.has_stay:
        stay, cleared = map_stay(message, pv1, event, trigger, profile, reading)
        location_from, location_to = movement(pv1, event, stay, profile)
    occurred_at = _occurred_at(evn, stay, event, recorded_at, source, reading)
    if trigger == "A07" and stay is not None:
        stay, location_from = end_inpatient_spell(stay, location_from, occurred_at, reading)
        location_to = None
    patient = map_patient(message, reading)
    merge = map_merge(message, patient, reading) if event.kind is EventKind.MERGE else None
    return _CARE_EVENT(
        {
            "event_id": event_id(profile.feed, message_id),
            "kind": event.kind,
            "trigger": trigger,
            "occurred_at": occurred_at,
            "recorded_at": recorded_at,
            "source": source,
            "patient": patient,
            "stay": stay,
            "location_from": location_from,
            "location_to": location_to,
            "cancels": event.cancels,
            "merge": merge,
            "cleared": _cleared(message, patient, stay) + cleared,
            "warnings": tuple(reading.warnings),
        }
    )


# Segments the ADT structures allow once (HL7 v2.4-2.8 ch. 3: ADT_A01, A02, A03, A05, A06, A09,
# A12, A21, A30, A38): MSH, EVN, PID, PD1, PV1, PV2 and, where it is in the structure, MRG.
# ADT_A39 (A40) repeats its PID/PD1/MRG/PV1 group: `map_merge` refuses a second pair itself.
_SINGLE = ("EVN", "PID", "PD1", "PV1", "PV2", "MRG")
_MERGE_GROUP = frozenset({"PID", "PD1", "MRG", "PV1"})


def _check_single_segments(message: Hl7Message, trigger: str) -> None:
    """Refuse a segment sent twice where the structure allows one: which of two PIDs or PV1s
    is the real one cannot be known, so neither is used ("first one wins" would guess)."""
    for name in _SINGLE:
        count = message.names.count(name)
        if count > 1 and not (trigger == "A40" and name in _MERGE_GROUP):
            raise MappingError(
                f"{name} segment repeated ({count} times): an ADT^{trigger} allows one"
                f" {name}; which one is meant cannot be known, so the message is not used",
                location=name,
                code="100",
            )


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_SHOWN_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,9}")


def _shown(code: str) -> str:
    """A sender's code for an error reason: short plain codes as sent, anything else (a line
    break the reader joined into MSH-9, control characters, spaces) not echoed."""
    return "(none)" if not code else code if _SHOWN_CODE.fullmatch(code) else "(unreadable)"


def _trigger(msh: Segment, evn: Segment | None, reading: Reading) -> str:
    message_type = msh.value(9).strip().upper()
    if message_type != "ADT":
        raise MappingError(
            f"message type {_shown(message_type)} is not supported", location="MSH-9.1", code="200"
        )
    trigger, location = msh.value(9, 2).strip().upper(), "MSH-9.2"
    evn_trigger = evn.value(1).strip().upper() if evn is not None else ""
    if not trigger and evn_trigger:
        # v2.1/2.2 senders put the event code only in EVN-1.
        trigger, location = evn_trigger, "EVN-1"
    if not trigger:
        raise MappingError("trigger event missing", location="MSH-9.2", code="101")
    if trigger not in SUPPORTED_TRIGGERS:
        name = trigger_name(trigger)
        described = f"{_shown(trigger)} ({name})" if name else _shown(trigger)
        raise MappingError(
            f"trigger event {described} is not supported", location=location, code="201"
        )
    if evn_trigger and evn_trigger != trigger:
        reading.warn("EVN-1", "event type differs from MSH-9.2; MSH-9.2 is used")
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
    return _MESSAGE_SOURCE(
        {
            "feed": profile.feed,
            "format": MessageFormat.HL7V2,
            "message_id": msh.value(10).strip(),
            "system": clean(msh.value(3)) or clean(msh.value(3, 2)),
            "facility_ods": clean(msh.value(4)),
            "message_type": f"ADT^{trigger}",
            "version": version or None,
            "profile": clean(msh.value(21)),
            "sent_at": sent_at,
            "sequence": clean(msh.value(13)),
        }
    )


def _occurred_at(
    evn: Segment | None,
    stay: Stay | None,
    event: AdtEvent,
    recorded_at: Instant | None,
    source: MessageSource,
    reading: Reading,
) -> Instant | None:
    occurred = read_instant(reading, evn.value(6), "EVN-6", required=True) if evn else None
    if occurred is not None:
        return occurred
    fallbacks: list[tuple[Instant | None, str]] = []
    if stay is not None and event.stay_time is not None:
        own = stay.admitted_at if event.stay_time == 44 else stay.discharged_at
        fallbacks.append((own, f"PV1-{event.stay_time}"))
    fallbacks += [(recorded_at, "EVN-2"), (source.sent_at, "MSH-7")]
    for instant, location in fallbacks:
        if instant is not None:
            reading.warn("EVN-6", f"event date/time missing; taken from {location}")
            return instant
    reading.warn("EVN-6", "event date/time missing and nothing to take it from")
    return None


def _cleared(message: Hl7Message, patient: Patient, stay: Stay | None) -> tuple[str, ...]:
    """The model paths whose field the sender sent as ``""`` and that are now absent."""
    cleared: list[str] = []
    for name, fields in _DELETABLE.items():
        segment = message.segment(name)
        if segment is None or _HL7_NULL not in segment.raw:
            continue  # the common case: no explicit null anywhere in the segment
        owner = patient if name in ("PID", "PD1") else stay
        if owner is None:
            continue
        for number, path in fields:
            if (
                path not in cleared
                and segment.field(number).is_null
                and not getattr(owner, path.split(".", 1)[1])
            ):
                cleared.append(path)
    return tuple(cleared)
