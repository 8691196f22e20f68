"""The patient of an HL7 v2 ADT message, from PID (and PD1, ZU8).

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
from mappings.codes import ETHNIC_CATEGORIES, ETHNIC_CATEGORY_ENGLAND
from mappings.errors import MappingError
from mappings.hl7v2.elements import Hl7Message, Repetition, Segment
from mappings.hl7v2.types import (
    Reading,
    clean,
    looks_like_ods,
    read_code,
    read_date,
    read_instant,
)
from mappings.model import (
    NHS_NUMBER_SYSTEM,
    Address,
    AddressUse,
    Coding,
    Gender,
    Identifier,
    IdentifierKind,
    Merge,
    NameUse,
    NhsNumberStatus,
    Patient,
    PersonName,
)

__all__ = ["map_merge", "map_patient"]

_NHS_AUTHORITIES = frozenset({"NHS", "NHSNBR", "NHSNMBR", "NHS NUMBER"})
_NHS_TYPES = frozenset({"NH", "NHS", "NHSNBR", "NHSNMBR"})
_NHS_NUMBER_OID = "2.16.840.1.113883.2.1.4.1"

# HL7 table 0200 plus the ITK (PREFERRED, PREVIOUS-*) and Cerner (CURRENT, PREVIOUS) words.
_NAME_USES = {
    "": NameUse.OFFICIAL,
    "L": NameUse.OFFICIAL,
    "CURRENT": NameUse.OFFICIAL,
    "A": NameUse.ALIAS,
    "S": NameUse.ALIAS,
    "D": NameUse.USUAL,
    "N": NameUse.USUAL,
    "PREFERRED": NameUse.USUAL,
    "M": NameUse.MAIDEN,
    "PREVIOUS-MAIDEN": NameUse.MAIDEN,
    "B": NameUse.OLD,
    "PREVIOUS": NameUse.OLD,
    "U": NameUse.UNKNOWN,
}

# NHS person gender codes (0 not known, 1 male, 2 female, 9 not specified = indeterminate,
# X not known) and HL7 table 0001, mapped the way the NHS and HL7 concept maps do.
_GENDERS = {
    "1": Gender.MALE,
    "M": Gender.MALE,
    "2": Gender.FEMALE,
    "F": Gender.FEMALE,
    "9": Gender.OTHER,
    "O": Gender.OTHER,
    "A": Gender.OTHER,
    "N": Gender.OTHER,
    "0": Gender.UNKNOWN,
    "X": Gender.UNKNOWN,
    "U": Gender.UNKNOWN,
}

# HL7 table 0190 and the NHS ITK / PDS words (PST postal, TMP temporary).
_ADDRESS_USES = {
    "": AddressUse.HOME,
    "H": AddressUse.HOME,
    "HOME": AddressUse.HOME,
    "P": AddressUse.HOME,
    "L": AddressUse.HOME,
    "PST": AddressUse.POSTAL,
    "M": AddressUse.POSTAL,
    "TMP": AddressUse.TEMPORARY,
    "C": AddressUse.TEMPORARY,
    "B": AddressUse.WORK,
    "O": AddressUse.WORK,
    "BA": AddressUse.OLD,
}

_LOCATION_SHOWN = frozenset({"", "N", "NO", "0", "F", "FALSE"})
_LOCATION_HIDDEN = frozenset({"Y", "YES", "1", "T", "TRUE"})


def map_patient(message: Hl7Message, reading: Reading) -> Patient:
    """The patient from PID, PD1 and ZU8. A message without PID cannot be mapped."""
    pid = message.segment("PID")
    if pid is None:
        raise MappingError("PID segment missing", location="PID", code="100")
    pd1 = message.segment("PD1")
    birth_date, birth_text = read_date(reading, pid.value(7), "PID-7")
    gender_code = pid.value(8).strip().upper()
    gender = _GENDERS.get(gender_code)
    if gender_code and gender is None:
        reading.warn("PID-8", "sex code not recognised")
    status = _nhs_number_status(pid, reading)
    return Patient(
        identifiers=_identifiers(pid, status, reading),
        names=_names(pid, reading),
        birth_date=birth_date,
        birth_date_original=birth_text,
        gender=gender,
        gender_original=clean(pid.value(8)),
        addresses=_addresses(pid, reading),
        ethnic_category=_ethnic_category(pid, reading),
        gp_practice_ods=_gp_practice(pd1),
        gp_code=clean(pd1.value(4)) if pd1 else None,
        deceased_at=read_instant(reading, pid.value(29), "PID-29"),
        identity_unknown=pid.value(31).strip().upper() == "Y",
        nhs_number_status=status,
        location_hidden=_location_hidden(message.segment("ZU8"), reading),
    )


def map_merge(message: Hl7Message, patient: Patient, reading: Reading) -> Merge:
    """The merge of an A34/A40: PID-3 survives, MRG-1 (and the v2.3 MRG-4) is retired.

    One PID/MRG pair per message: a merge of several patients in one message is refused
    rather than half applied.
    """
    merges = message.segments("MRG")
    if not merges:
        raise MappingError("MRG segment missing from a merge", location="MRG", code="100")
    if len(merges) > 1 or len(message.segments("PID")) > 1:
        raise MappingError(
            "more than one PID/MRG pair; send one merge per message", location="MRG", code="100"
        )
    if not patient.identifiers:
        raise MappingError("the surviving patient has no identifier", location="PID-3", code="101")
    mrg = merges[0]
    retired: dict[tuple[IdentifierKind, str, str | None], Identifier] = {}
    reps = [(f"MRG-1[{i}]", rep) for i, rep in enumerate(mrg.field(1).repetitions(), start=1)]
    if mrg.field(4):
        reps.append(("MRG-4", mrg.field(4).first()))
    for location, rep in reps:
        identifier = _identifier(rep, location, None, reading)
        if identifier is not None:
            retired.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
    if not retired:
        raise MappingError("prior patient identifier missing", location="MRG-1", code="101")
    return Merge(survivor=patient.identifiers, retired=tuple(retired.values()))


def _identifiers(
    pid: Segment, status: NhsNumberStatus | None, reading: Reading
) -> tuple[Identifier, ...]:
    found: dict[tuple[IdentifierKind, str, str | None], Identifier] = {}
    external: list[Identifier] = []
    for index, rep in enumerate(pid.field(3).repetitions(), start=1):
        identifier = _identifier(rep, f"PID-3[{index}]", status, reading)
        if identifier is not None:
            found.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
    pid2 = pid.field(2)
    kinds = {i.kind for i in found.values()}
    labelled = IdentifierKind.NHS_NUMBER in kinds or IdentifierKind.UNVERIFIED_NHS_NUMBER in kinds
    if pid2:
        identifier = _identifier(pid2.first(), "PID-2", status, reading)
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


def _identifier(
    rep: Repetition, location: str, status: NhsNumberStatus | None, reading: Reading
) -> Identifier | None:
    value = clean(rep.value(1))
    if value is None:
        return None
    cx4, cx4_2, cx5 = rep.value(4), rep.value(4, 2), rep.value(5)
    authority = clean(cx4) or clean(cx4_2)
    type_code = clean(cx5)
    if not _is_nhs_number(cx4, cx4_2, cx5):
        return Identifier(
            kind=IdentifierKind.LOCAL,
            value=value,
            system=authority,
            type_code=type_code,
            assigner_ods=authority if looks_like_ods(authority) else None,
        )
    number = nhs_number.normalise(value)
    warnings = nhs_number.warnings_for(number)
    for warning in warnings:
        reading.warn(location, warning)
    if nhs_number.is_valid(number):
        return Identifier(
            kind=IdentifierKind.NHS_NUMBER,
            value=number,
            system=NHS_NUMBER_SYSTEM,
            type_code=type_code,
            verification=status,
            warnings=warnings,
            not_real=reading.not_real(number),
        )
    # The sender's own authority, not the NHS number system: nothing downstream may mistake
    # this for a verified NHS number.
    return Identifier(
        kind=IdentifierKind.UNVERIFIED_NHS_NUMBER,
        value=number,
        system=authority,
        type_code=type_code,
        verification=status,
        warnings=warnings,
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
    return Identifier(
        kind=IdentifierKind.NHS_NUMBER,
        value=number,
        system=NHS_NUMBER_SYSTEM,
        verification=status,
        warnings=warnings,
        not_real=reading.not_real(number),
    )


def _is_nhs_number(cx4: str, cx4_2: str, cx5: str) -> bool:
    """Whether a CX's assigning authority (CX.4, its universal id CX.4.2) or identifier type
    (CX.5) labels it an NHS number."""
    return (
        cx4.strip().upper() in _NHS_AUTHORITIES
        or cx4_2.strip() == _NHS_NUMBER_OID
        or cx5.strip().upper() in _NHS_TYPES
    )


def _nhs_number_status(pid: Segment, reading: Reading) -> NhsNumberStatus | None:
    for rep in pid.field(32).repetitions():
        code = rep.value(1).strip().upper()
        if code.startswith("NSTS"):
            try:
                return NhsNumberStatus(code[4:])
            except ValueError:
                reading.warn("PID-32", f"NHS number status {code!r} not recognised")
    return None


def _names(pid: Segment, reading: Reading) -> tuple[PersonName, ...]:
    names: list[PersonName] = []
    for index, rep in enumerate(pid.field(5).repetitions(), start=1):
        if not rep:
            continue
        type_code = rep.value(7).strip().upper()
        use = _NAME_USES.get(type_code)
        if use is None:
            use = NameUse.OLD if type_code.startswith("PREVIOUS") else NameUse.UNKNOWN
            if use is NameUse.UNKNOWN:
                reading.warn(f"PID-5[{index}]", f"name type {type_code!r} not recognised")
        given = tuple(g for g in (clean(rep.value(2)), clean(rep.value(3))) if g)
        name = PersonName(
            use=use,
            family=clean(rep.value(1)),
            given=given,
            prefix=clean(rep.value(5)),
            suffix=clean(rep.value(4)),
        )
        if name.family or name.given:
            names.append(name)
    return tuple(names)


def _addresses(pid: Segment, reading: Reading) -> tuple[Address, ...]:
    addresses: list[Address] = []
    for index, rep in enumerate(pid.field(11).repetitions(), start=1):
        if not rep:
            continue
        type_code = rep.value(7).strip().upper()
        use = _ADDRESS_USES.get(type_code)
        if use is None:
            reading.warn(f"PID-11[{index}]", f"address type {type_code!r} not recognised")
            use = AddressUse.UNKNOWN
        lines = tuple(line for line in (_street(rep), clean(rep.value(2))) if line)
        city, district = clean(rep.value(3)), clean(rep.value(4))
        postcode, country = clean(rep.value(5)), clean(rep.value(6))
        if lines or city or district or postcode or country:  # more than a bare use
            addresses.append(
                Address(
                    use=use,
                    lines=lines,
                    city=city,
                    district=district,
                    postcode=postcode,
                    country=country,
                )
            )
    return tuple(addresses)


def _ethnic_category(pid: Segment, reading: Reading) -> Coding | None:
    """PID-22 under the NHS ethnic category list, unless CE.3 names another coding system.

    US senders put HL7 table 0189 ethnic *group* here, whose ``N`` (not Hispanic) must not
    become the NHS category ``N`` (Black or Black British - African).
    """
    coding_system = pid.value(22, 3).strip().upper()
    foreign = bool(coding_system) and "NHS" not in coding_system
    return read_code(
        reading,
        pid.value(22),
        "PID-22",
        system=ETHNIC_CATEGORY_ENGLAND,
        known={} if foreign else ETHNIC_CATEGORIES,
        what="ethnic category",
        quote=False,
    )


def _street(rep: Repetition) -> str | None:
    """XAD.1 street address. From v2.5 it is an SAD whose parts (street, name, number) may
    be split into subcomponents: join the parts not already in the first."""
    street = rep.component(1)
    if street.is_plain:  # one part, nothing to decode: the usual case
        return street.raw.strip() or None
    line = ""
    for part in street.subcomponents():
        text = part.text.strip()
        if text and text not in line:
            line = f"{line} {text}" if line else text
    return line or None


def _gp_practice(pd1: Segment | None) -> str | None:
    """The registered GP practice's ODS code from PD1-3 (XON), first repetition.

    ITK puts it in XON.3; v2.5+ senders may use XON.10 (organisation identifier). XON.1 is
    the practice *name*, used only when it has the shape of a code.
    """
    if pd1 is None:
        return None
    xon = pd1.field(3).first()
    code = clean(xon.value(3)) or clean(xon.value(10))
    if code:
        return code
    name = clean(xon.value(1))
    return name if name and name.isalnum() and name.isupper() and len(name) <= 8 else None


def _location_hidden(zu8: Segment | None, reading: Reading) -> bool:
    """ZU8-4 location hiding. An unrecognised value hides: showing an address that should
    have been hidden cannot be undone."""
    if zu8 is None:
        return False
    flag = zu8.value(4).strip().upper()
    if flag in _LOCATION_SHOWN:
        return False
    if flag not in _LOCATION_HIDDEN:
        reading.warn("ZU8-4", "location hiding value not recognised; location treated as hidden")
    return True
