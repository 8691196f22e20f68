"""What each HL7 v2 ADT trigger means for the care model: one row per supported trigger.

The table says, for each trigger NHS feeds use, which `EventKind` it becomes, what it does to
the stay's status, which PV1 timestamp is the event's own (the fallback for a missing EVN-6),
what a cancel cancels, and where the patient moves from and to (PV1-3 assigned location,
PV1-6 prior location). Every other trigger is refused with a reason naming it.

Choices the HL7 standard leaves open (see docs/mapping.md for the reasoning):

- A06 (outpatient becomes inpatient) is an admission and A07 (inpatient becomes outpatient)
  a discharge: the inpatient spell starts or ends, and a discharge missed is worse than one
  notified with the trigger saying it was a change of class; the stay an A07 describes is the
  inpatient one that ended, at EVN-6 (`mappings.hl7v2.stay.end_inpatient_spell`);
- A11 cancels an admission (HL7 also uses it for an A04 registration: match by stay);
- A12's PV1-3 is the location before the cancelled transfer, where the patient goes back to;
- A13's discharge fields (PV1-36, PV1-37, PV1-45) describe the discharge it cancels: not read;
- A21 (leave of absence) is never a discharge: the stay is on leave and stays open;
- A28/A31 carry demographics only (no stay), A34/A40 a merge of two patients' records.
"""

from __future__ import annotations

from dataclasses import dataclass

from mappings.model import EventKind, StayStatus

__all__ = ["SUPPORTED_TRIGGERS", "AdtEvent", "trigger_name"]


@dataclass(frozen=True, slots=True)
class AdtEvent:
    """How one trigger maps."""

    kind: EventKind
    name: str
    """The trigger's HL7 name, for error reasons and docs."""
    status: StayStatus | None = None
    """The stay's status after the event; None when the event does not say (an update)."""
    stay_time: int | None = None
    """The PV1 field holding the event's own time (44 admit, 45 discharge), if any."""
    cancels: EventKind | None = None
    moves_from: int | None = None
    """The PV1 field (3 or 6) the patient leaves, if the event moves them."""
    moves_to: int | None = None
    """The PV1 field (3) the patient arrives at, if the event moves them."""
    has_stay: bool = True
    """False for person-level events (demographics, merges): PV1 is neither needed nor read."""
    open_stay: bool = False
    """True when the stay is open after the event, so a discharge time (PV1-45) is suspect."""
    reads_discharge: bool = True
    """False when PV1-36/37/45 can only describe a discharge the event undoes (A13)."""


_K, _S = EventKind, StayStatus

SUPPORTED_TRIGGERS: dict[str, AdtEvent] = {
    # The stay opens, moves or closes.
    "A01": AdtEvent(
        _K.ADMISSION,
        "admit/visit notification",
        _S.ACTIVE,
        stay_time=44,
        moves_to=3,
        open_stay=True,
    ),
    "A02": AdtEvent(
        _K.TRANSFER, "transfer a patient", _S.ACTIVE, moves_from=6, moves_to=3, open_stay=True
    ),
    "A03": AdtEvent(_K.DISCHARGE, "discharge/end visit", _S.FINISHED, stay_time=45, moves_from=3),
    "A04": AdtEvent(
        _K.REGISTRATION,
        "register a patient",
        _S.ACTIVE,
        stay_time=44,
        moves_to=3,
        open_stay=True,
    ),
    "A05": AdtEvent(_K.PRE_ADMISSION, "pre-admit a patient", _S.PLANNED, open_stay=True),
    "A06": AdtEvent(
        _K.ADMISSION,
        "change an outpatient to an inpatient",
        _S.ACTIVE,
        stay_time=44,
        moves_from=6,
        moves_to=3,
        open_stay=True,
    ),
    "A07": AdtEvent(
        _K.DISCHARGE,
        "change an inpatient to an outpatient",
        _S.FINISHED,
        stay_time=45,
        moves_from=6,
        moves_to=3,
    ),
    "A08": AdtEvent(_K.UPDATE, "update patient information"),
    "A21": AdtEvent(
        _K.LEAVE_START,
        "patient goes on a leave of absence",
        _S.ON_LEAVE,
        moves_from=3,
        open_stay=True,
    ),
    "A22": AdtEvent(
        _K.LEAVE_END,
        "patient returns from a leave of absence",
        _S.ACTIVE,
        moves_to=3,
        open_stay=True,
    ),
    # Cancels: the status is the stay's once the cancelled event is undone.
    "A11": AdtEvent(
        _K.CANCEL_ADMISSION,
        "cancel admit/visit notification",
        _S.CANCELLED,
        cancels=_K.ADMISSION,
    ),
    "A12": AdtEvent(
        _K.CANCEL_TRANSFER,
        "cancel transfer",
        _S.ACTIVE,
        cancels=_K.TRANSFER,
        moves_from=6,
        moves_to=3,
    ),
    "A13": AdtEvent(
        _K.CANCEL_DISCHARGE,
        "cancel discharge/end visit",
        _S.ACTIVE,
        cancels=_K.DISCHARGE,
        moves_to=3,
        reads_discharge=False,
    ),
    "A38": AdtEvent(
        _K.CANCEL_PRE_ADMISSION, "cancel pre-admit", _S.CANCELLED, cancels=_K.PRE_ADMISSION
    ),
    "A52": AdtEvent(
        _K.CANCEL_LEAVE_START,
        "cancel leave of absence for a patient",
        _S.ACTIVE,
        cancels=_K.LEAVE_START,
    ),
    "A53": AdtEvent(
        _K.CANCEL_LEAVE_END,
        "cancel patient returns from a leave of absence",
        _S.ON_LEAVE,
        cancels=_K.LEAVE_END,
    ),
    # The person, not a stay.
    "A28": AdtEvent(_K.PERSON_UPDATE, "add person information", has_stay=False),
    "A31": AdtEvent(_K.PERSON_UPDATE, "update person information", has_stay=False),
    "A34": AdtEvent(_K.MERGE, "merge patient information - patient ID only", has_stay=False),
    "A40": AdtEvent(_K.MERGE, "merge patient - patient identifier list", has_stay=False),
}

# HL7 table 0003 names of the ADT triggers we refuse, so a rejection says what was sent.
_UNSUPPORTED_NAMES = {
    "A09": "patient departing - tracking",
    "A10": "patient arriving - tracking",
    "A14": "pending admit",
    "A15": "pending transfer",
    "A16": "pending discharge",
    "A17": "swap patients",
    "A18": "merge patient information",
    "A19": "patient query",
    "A20": "bed status update",
    "A23": "delete a patient record",
    "A24": "link patient information",
    "A25": "cancel pending discharge",
    "A26": "cancel pending transfer",
    "A27": "cancel pending admit",
    "A29": "delete person information",
    "A30": "merge person information",
    "A32": "cancel patient arriving - tracking",
    "A33": "cancel patient departing - tracking",
    "A35": "merge patient information - account number only",
    "A36": "merge patient information - patient ID and account number",
    "A37": "unlink patient information",
    "A39": "merge person - patient ID",
    "A41": "merge account - patient account number",
    "A42": "merge visit - visit number",
    "A43": "move patient information - patient identifier list",
    "A44": "move account information - patient account number",
    "A45": "move visit information - visit number",
    "A46": "change patient ID",
    "A47": "change patient identifier list",
    "A48": "change alternate patient ID",
    "A49": "change patient account number",
    "A50": "change visit number",
    "A51": "change alternate visit ID",
    "A54": "change attending doctor",
    "A55": "cancel change attending doctor",
    "A60": "update allergy information",
    "A61": "change consulting doctor",
    "A62": "cancel change consulting doctor",
}


def trigger_name(trigger: str) -> str | None:
    """The HL7 name of an ADT trigger event, supported or not; None when unknown."""
    event = SUPPORTED_TRIGGERS.get(trigger)
    return event.name if event else _UNSUPPORTED_NAMES.get(trigger)
