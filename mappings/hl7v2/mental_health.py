"""Legal status and risk flags: read only from where a feed's profile says it sends them.

ITK has no field for either. Feeds send the legal status in ZU5 (with ZU047's legacy codes),
in a local Z-segment or in an OBX, and some send a high-risk flag the same ways; the profile
names the field (`mappings.profile.LocalField`) and the code table that translates it.

A legal status is never inferred: nothing configured, or nothing sent, means no legal status,
never "informal". A code the national list does not know (a CTO, the retired "supervised
discharge") is kept under the feed's local system with a warning.
"""

from __future__ import annotations

from mappings.codes import LEGAL_STATUS_ENGLAND, LEGAL_STATUSES, RISK_FLAG, local_system
from mappings.hl7v2.elements import Hl7Message, Segment
from mappings.hl7v2.types import Reading, clean, model_factory, read_code, read_instant
from mappings.model import Coding, Instant, LegalStatus, LegalStatusContext
from mappings.profile import FeedProfile, FieldRef, LocalField

__all__ = ["read_legal_status", "read_risk_flags"]

_LEGAL_STATUS = model_factory(LegalStatus)

_YES = frozenset({"Y", "YES", "T", "TRUE", "1"})
_NO = frozenset({"N", "NO", "F", "FALSE", "0"})
_HIGH_RISK = Coding(system=RISK_FLAG, code="high-risk", display="High risk")


def read_legal_status(
    message: Hl7Message, profile: FeedProfile, event_context: LegalStatusContext, reading: Reading
) -> tuple[tuple[LegalStatus, ...], bool]:
    """The legal statuses the profile's sources hold, and whether the sender deleted one (``""``).

    `event_context` applies to a source that does not name its own context: admission on an
    admission, discharge on a discharge, current otherwise.
    """
    statuses: list[LegalStatus] = []
    cleared = False
    for source in profile.legal_status:
        for segment in _segments(message, source):
            field = segment.field(source.value.field)
            if field.is_null:
                cleared = True
                continue
            rep = field.first()
            code = read_code(
                reading,
                rep.value(source.value.component),
                source.location,
                system=LEGAL_STATUS_ENGLAND,
                known=LEGAL_STATUSES,
                what="legal status",
                quote=False,  # a section says something about the person: not for logs
                table=profile.code_tables.get("legal_status"),
                element="legal_status",
                display=_display(rep.value(2), source.value),
            )
            if code is None:
                continue
            statuses.append(
                _LEGAL_STATUS(
                    {
                        "code": code,
                        "context": source.context or event_context,
                        "start": _instant(segment, source, source.start, reading),
                        "end": _instant(segment, source, source.end, reading),
                    }
                )
            )
    return tuple(statuses), cleared and not statuses


def read_risk_flags(
    message: Hl7Message, profile: FeedProfile, reading: Reading
) -> tuple[tuple[Coding, ...], bool]:
    """The risk flags the profile's sources hold, and whether the sender deleted them (``""``).

    A yes/no source gives the engine's own ``high-risk`` flag when it says yes; a coded source
    keeps each code (every repetition) under the feed's local system. A value that is neither
    yes, no nor empty is kept as a flag: a risk shown in error can be dismissed, a risk lost
    cannot be recovered.
    """
    flags: dict[tuple[str, str], Coding] = {}
    cleared = False
    for source in profile.risk_flags:
        ref = source.value
        for segment in _segments(message, source):
            field = segment.field(ref.field)
            if field.is_null:
                cleared = True
                continue
            for rep in field.repetitions():
                code = rep.value(ref.component).strip()
                if not code or code.upper() in _NO:
                    continue
                if code.upper() in _YES:
                    flag = _HIGH_RISK
                else:
                    flag = Coding(
                        system=local_system(reading.feed, "risk_flag"),
                        code=code,
                        display=_display(rep.value(2), ref),
                    )
                flags.setdefault((flag.system, flag.code), flag)
    return tuple(flags.values()), cleared and not flags


def _segments(message: Hl7Message, source: LocalField) -> list[Segment]:
    if source.observation is None:
        segment = message.segment(source.value.segment)
        return [segment] if segment is not None else []
    return [obx for obx in message.segments("OBX") if obx.value(3).strip() == source.observation]


def _display(text: str, ref: FieldRef) -> str | None:
    """The sender's text beside a coded value (CE.2/CWE.2), when the code is CE.1."""
    return clean(text) if ref.component == 1 else None


def _instant(
    segment: Segment, source: LocalField, ref: FieldRef | None, reading: Reading
) -> Instant | None:
    if ref is None:
        return None
    location = str(ref) if source.observation is None else f"OBX[{source.observation}]-{ref.field}"
    return read_instant(reading, segment.value(ref.field, ref.component), location)
