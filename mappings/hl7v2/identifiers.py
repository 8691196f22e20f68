"""Patient identifiers of an HL7 v2 ADT message: PID-3, PID-2 and MRG-1/MRG-4 (CX), and the
NHS number status (PID-32).

The NHS number is looked for in every PID-3 repetition (and PID-2, where v2.3 senders put
an external id), never assumed to be the first. A repetition carries one when its assigning
authority (CX.4) or identifier type (CX.5) says so. Besides ITK's ``NHS`` / ``NH``, real feeds
send ``NHSNBR`` / ``NHSNMBR`` (Cerner Millennium and Simulated Hospital style), and the NHS
number OID as CX.4's universal id (``&2.16.840.1.113883.2.1.4.1&ISO``); all are accepted.

Only a number that passes the modulus-11 check becomes the NHS number. One that fails is
kept as an unverified NHS number with a warning, and the message still maps. Two different
valid numbers are both kept and flagged: `Patient.nhs_number` is then None, so nothing routes
on a guess.
"""

from __future__ import annotations

from mappings import nhs_number
from mappings.hl7v2.elements import Repetition, Segment
from mappings.hl7v2.types import Reading, clean, looks_like_ods, model_factory
from mappings.model import NHS_NUMBER_SYSTEM, Identifier, IdentifierKind, NhsNumberStatus

__all__ = ["nhs_number_status", "read_identifier", "read_identifiers"]

_IDENTIFIER = model_factory(Identifier)

_NHS_AUTHORITIES = frozenset({"NHS", "NHSNBR", "NHSNMBR", "NHS NUMBER"})
_NHS_TYPES = frozenset({"NH", "NHS", "NHSNBR", "NHSNMBR"})
_NHS_NUMBER_OID = "2.16.840.1.113883.2.1.4.1"


def read_identifiers(
    pid: Segment, status: NhsNumberStatus | None, reading: Reading
) -> tuple[Identifier, ...]:
    """The patient's identifiers from PID-3 (every repetition) and PID-2, each kept once."""
    found: dict[tuple[IdentifierKind, str, str | None], Identifier] = {}
    external: list[Identifier] = []
    for index, rep in enumerate(pid.field(3).repetitions(), start=1):
        identifier = read_identifier(rep, f"PID-3[{index}]", status, reading)
        if identifier is not None:
            found.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
    pid2 = pid.field(2)
    kinds = {i.kind for i in found.values()}
    labelled = IdentifierKind.NHS_NUMBER in kinds or IdentifierKind.UNVERIFIED_NHS_NUMBER in kinds
    if pid2:
        identifier = read_identifier(pid2.first(), "PID-2", status, reading)
        if identifier is not None and not labelled:
            identifier = _bare_nhs_number(pid2.first(), identifier, status, reading)
        if identifier is not None:
            external.append(identifier)
    has_local = IdentifierKind.LOCAL in kinds
    for identifier in external:
        # PID-2 is the v2.3 external id: an NHS number there counts; a local id only fills in
        # for a PID-3 without one.
        if identifier.kind is not IdentifierKind.LOCAL or not has_local:
            found.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
    valid = {i.value for i in found.values() if i.kind is IdentifierKind.NHS_NUMBER}
    if len(valid) > 1:
        reading.warn("PID-3", "more than one valid NHS number; none is used as the NHS number")
    return tuple(found.values())


def read_identifier(
    rep: Repetition, location: str, status: NhsNumberStatus | None, reading: Reading
) -> Identifier | None:
    """One CX (a PID-3 repetition, PID-2, MRG-1, MRG-4); None when it has no id (CX.1)."""
    cx1, _, _, cx4, cx5 = rep.values(5)
    value = clean(cx1)
    if value is None:
        return None
    cx4_2 = rep.value(4, 2)
    authority = clean(cx4) or clean(cx4_2)
    type_code = clean(cx5)
    if not _is_nhs_number(cx4, cx4_2, cx5):
        return _IDENTIFIER(
            {
                "kind": IdentifierKind.LOCAL,
                "value": value,
                "system": authority,
                "type_code": type_code,
                "assigner_ods": authority if looks_like_ods(authority) else None,
            }
        )
    number = nhs_number.normalise(value)
    warnings = nhs_number.warnings_for(number)
    for warning in warnings:
        reading.warn(location, warning)
    if nhs_number.is_valid(number):
        return _IDENTIFIER(
            {
                "kind": IdentifierKind.NHS_NUMBER,
                "value": number,
                "system": NHS_NUMBER_SYSTEM,
                "type_code": type_code,
                "verification": status,
                "warnings": warnings,
                "not_real": reading.not_real(number),
            }
        )
    # The sender's own authority, not the NHS number system: nothing downstream may mistake
    # this for a verified NHS number.
    return _IDENTIFIER(
        {
            "kind": IdentifierKind.UNVERIFIED_NHS_NUMBER,
            "value": number,
            "system": authority,
            "type_code": type_code,
            "verification": status,
            "warnings": warnings,
        }
    )


def _bare_nhs_number(
    rep: Repetition, identifier: Identifier, status: NhsNumberStatus | None, reading: Reading
) -> Identifier:
    """PID-2 with neither assigning authority nor type: v2.3 senders put the NHS number there
    ("patient ID (external ID)"). A valid one is read as the NHS number, with a warning,
    unless the feed's profile says its PID-2 is a local id (``pid_2: local``), and only when
    PID-3 names no NHS number: a local number that happens to pass modulus 11 (about one in
    eleven do) must never outvote, or stand beside, the number PID-3 labels as the NHS
    number."""
    if (
        identifier.kind is not IdentifierKind.LOCAL
        or identifier.system is not None
        or identifier.type_code is not None
        or rep.value(4, 2).strip()
        or not reading.pid_2_nhs_number
        or not nhs_number.is_valid(nhs_number.normalise(identifier.value))
    ):
        return identifier
    number = nhs_number.normalise(identifier.value)
    reading.warn("PID-2", "a valid NHS number without assigning authority (v2.3 style): read"
                 " as the NHS number")  # fmt: skip
    warnings = nhs_number.warnings_for(number)
    for warning in warnings:
        reading.warn("PID-2", warning)
    return _IDENTIFIER(
        {
            "kind": IdentifierKind.NHS_NUMBER,
            "value": number,
            "system": NHS_NUMBER_SYSTEM,
            "verification": status,
            "warnings": warnings,
            "not_real": reading.not_real(number),
        }
    )


def _is_nhs_number(cx4: str, cx4_2: str, cx5: str) -> bool:
    """Whether a CX's assigning authority (CX.4, its universal id CX.4.2) or identifier type
    (CX.5) labels it an NHS number."""
    return (
        cx4.strip().upper() in _NHS_AUTHORITIES
        or cx4_2.strip() == _NHS_NUMBER_OID
        or cx5.strip().upper() in _NHS_TYPES
    )


def nhs_number_status(pid: Segment, reading: Reading) -> NhsNumberStatus | None:
    """PID-32's NHS number status indicator (``NSTS01``...), the first recognised one."""
    for rep in pid.field(32).repetitions():
        code = rep.value(1).strip().upper()
        if code.startswith("NSTS"):
            try:
                return NhsNumberStatus(code[4:])
            except ValueError:
                reading.warn("PID-32", f"NHS number status {code!r} not recognised")
    return None
