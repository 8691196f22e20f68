"""What happened: the `EventKind` of a FHIR message, from the MessageHeader's event or the
Encounter's status and location history, and the stay status each leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from mappings.errors import MappingError
from mappings.fhir.read import shown_code
from mappings.fhir.values import as_text
from mappings.model import CANCEL_OF, CANCELS, EventKind, StayStatus

if TYPE_CHECKING:
    from mappings.fhir.message import Message, Resource
    from mappings.fhir.source import EncounterHistory


# --- what happened ------------------------------------------------------------------------------

_KIND_BY_STATUS: Final = {
    "planned": EventKind.PRE_ADMISSION,
    "arrived": EventKind.ADMISSION,
    "triaged": EventKind.ADMISSION,
    "in-progress": EventKind.ADMISSION,
    "onleave": EventKind.LEAVE_START,
    "finished": EventKind.DISCHARGE,
    "cancelled": EventKind.CANCEL_ADMISSION,
    "entered-in-error": EventKind.CANCEL_ADMISSION,
    "unknown": EventKind.UPDATE,
}
STAY_STATUS: Final[Mapping[str, StayStatus | None]] = {
    "planned": StayStatus.PLANNED,
    "arrived": StayStatus.ACTIVE,
    "triaged": StayStatus.ACTIVE,
    "in-progress": StayStatus.ACTIVE,
    "onleave": StayStatus.ON_LEAVE,
    "finished": StayStatus.FINISHED,
    "cancelled": StayStatus.CANCELLED,
    "entered-in-error": StayStatus.CANCELLED,
    "unknown": None,
}
# An Encounter entered in error undoes the event: the stay is as it was before it.
AFTER_CANCEL: Final = {
    EventKind.CANCEL_ADMISSION: StayStatus.CANCELLED,
    EventKind.CANCEL_PRE_ADMISSION: StayStatus.CANCELLED,
    EventKind.CANCEL_TRANSFER: StayStatus.ACTIVE,
    EventKind.CANCEL_DISCHARGE: StayStatus.ACTIVE,
    EventKind.CANCEL_LEAVE_START: StayStatus.ACTIVE,
    EventKind.CANCEL_LEAVE_END: StayStatus.ON_LEAVE,
}
# Which location the patient leaves and arrives at: the present one, or the one before it.
MOVES: Final[Mapping[EventKind, tuple[str | None, str | None]]] = {
    EventKind.ADMISSION: (None, "present"),
    EventKind.REGISTRATION: (None, "present"),
    EventKind.TRANSFER: ("previous", "present"),
    EventKind.CANCEL_TRANSFER: ("previous", "present"),
    EventKind.DISCHARGE: ("present", None),
    EventKind.LEAVE_START: ("present", None),
    EventKind.LEAVE_END: (None, "present"),
    EventKind.CANCEL_DISCHARGE: (None, "present"),
}
OPEN_STAY: Final = frozenset(
    {
        EventKind.ADMISSION,
        EventKind.TRANSFER,
        EventKind.REGISTRATION,
        EventKind.PRE_ADMISSION,
        EventKind.LEAVE_START,
        EventKind.LEAVE_END,
    }
)


def encounter_status(encounter: Resource) -> str:
    status = encounter.data.get("status")
    if status not in STAY_STATUS:
        raise MappingError(
            f"status {shown_code(status)} is not an Encounter status",
            location=f"{encounter.path}.status",
            code="103",
        )
    return str(status)


def encounter_event_kind(
    header_kind: EventKind | None, status: str, history: EncounterHistory
) -> EventKind:
    if header_kind is not None:
        if status == "entered-in-error" and header_kind not in CANCELS:
            return CANCEL_OF.get(header_kind, EventKind.CANCEL_ADMISSION)
        return header_kind
    kind = _KIND_BY_STATUS[status]
    if kind is EventKind.ADMISSION and history.moved():
        return EventKind.TRANSFER
    return kind


def check_event_agrees(
    message: Message, encounter: Resource, header_kind: EventKind | None, status: str
) -> None:
    """Refuse a MessageHeader event that the Encounter's own status and period contradict.

    The Encounter says what happened to the stay. A discharge is accepted only on an Encounter
    that is ``finished`` (or ``unknown`` with a ``period.end``); a leave event only on one that
    is not ``finished``. Anything else (a discharge on an ``onleave`` or ``in-progress``
    Encounter, a leave start on a finished one) is refused, naming both elements: guessing
    either way could notify a leave as a discharge, start a clock, or lose a real discharge.
    """
    if header_kind is None or message.header is None or status == "entered-in-error":
        return
    period = encounter.data.get("period")
    ended = isinstance(period, dict) and as_text(period.get("end")) is not None
    event_at = f"{message.header_path}.eventCoding"
    status_at, end_at = f"{encounter.path}.status", f"{encounter.path}.period.end"
    if header_kind is EventKind.DISCHARGE:
        if status == "finished" or (status == "unknown" and ended):
            return
        if status == "onleave":
            why = "a leave of absence is never a discharge"
        elif status in ("cancelled", "planned"):
            why = "the stay did not end in a discharge"
        elif ended:
            why = "period.end is set, but a discharge needs status 'finished'"
        else:
            why = "no period.end and nothing else says the stay has ended"
        related = (status_at,) if ended else (status_at, end_at)
        raise _contradiction("a discharge", status, why, event_at, related)
    if header_kind in (EventKind.LEAVE_START, EventKind.LEAVE_END) and status == "finished":
        what = f"a {header_kind.value.replace('_', ' ')}"
        why = "the stay has ended, which a leave of absence does not"
        raise _contradiction(what, status, why, event_at, (status_at,))


def _contradiction(
    what: str, status: str, why: str, event_at: str, related: tuple[str, ...]
) -> MappingError:
    named = ", ".join((event_at, *related))
    return MappingError(
        f"the MessageHeader event is {what} but the Encounter's status is '{status}': {why} "
        f"({named})",
        location=event_at,
        code="102",
        related=related,
        issue="business-rule",
    )


def person_event_kind(
    header_kind: EventKind | None, trigger: str | None, message: Message
) -> EventKind:
    """A message without an Encounter maps only as a person update or merge."""
    if header_kind in (EventKind.PERSON_UPDATE, EventKind.MERGE):
        return header_kind
    if message.header is not None and header_kind is None:
        raise MappingError(
            f"MessageHeader event {shown_code(trigger)} is not one Carebridge maps, and the "
            "message has no Encounter",
            location=f"{message.header_path}.eventCoding",
            code="201",
        )
    what = header_kind.value if header_kind else "an encounter event"
    raise MappingError(
        f"no Encounter in the message, which {what} needs", location="Bundle.entry", code="101"
    )
