"""The patient of an HL7 v2 ADT message, from PID (and PD1, ZU8); its identifiers and the NHS
number are read by `mappings.hl7v2.identifiers`."""

from __future__ import annotations

from mappings.codes import ETHNIC_CATEGORIES, ETHNIC_CATEGORY_ENGLAND
from mappings.errors import MappingError
from mappings.hl7v2.elements import Hl7Message, Repetition, Segment
from mappings.hl7v2.identifiers import nhs_number_status, read_identifier, read_identifiers
from mappings.hl7v2.types import (
    Reading,
    clean,
    model_factory,
    read_code,
    read_date,
    read_instant,
)
from mappings.model import (
    Address,
    AddressUse,
    Coding,
    Gender,
    Identifier,
    IdentifierKind,
    Merge,
    NameUse,
    Patient,
    PersonName,
)

__all__ = ["map_merge", "map_patient"]

_PERSON_NAME = model_factory(PersonName)
_ADDRESS = model_factory(Address)
_PATIENT = model_factory(Patient)
_MERGE = model_factory(Merge)

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
    status = nhs_number_status(pid, reading)
    return _PATIENT(
        {
            "identifiers": read_identifiers(pid, status, reading),
            "names": _names(pid, reading),
            "birth_date": birth_date,
            "birth_date_original": birth_text,
            "gender": gender,
            "gender_original": clean(pid.value(8)),
            "addresses": _addresses(pid, reading),
            "ethnic_category": _ethnic_category(pid, reading),
            "gp_practice_ods": _gp_practice(pd1),
            "gp_code": clean(pd1.value(4)) if pd1 else None,
            "deceased_at": read_instant(reading, pid.value(29), "PID-29"),
            "identity_unknown": pid.value(31).strip().upper() == "Y",
            "nhs_number_status": status,
            "location_hidden": _location_hidden(message.segment("ZU8"), reading),
        }
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
        identifier = read_identifier(rep, location, None, reading)
        if identifier is not None:
            retired.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
    if not retired:
        raise MappingError("prior patient identifier missing", location="MRG-1", code="101")
    return _MERGE({"survivor": patient.identifiers, "retired": tuple(retired.values())})


def _names(pid: Segment, reading: Reading) -> tuple[PersonName, ...]:
    names: list[PersonName] = []
    for index, rep in enumerate(pid.field(5).repetitions(), start=1):
        if not rep:
            continue
        family, given_1, given_2, suffix, prefix, _, type_text = rep.values(7)
        type_code = type_text.strip().upper()
        use = _NAME_USES.get(type_code)
        if use is None:
            use = NameUse.OLD if type_code.startswith("PREVIOUS") else NameUse.UNKNOWN
            if use is NameUse.UNKNOWN:
                reading.warn(f"PID-5[{index}]", f"name type {type_code!r} not recognised")
        given = tuple(g for g in (clean(given_1), clean(given_2)) if g)
        family_name = clean(family)
        if family_name or given:
            names.append(
                _PERSON_NAME(
                    {
                        "use": use,
                        "family": family_name,
                        "given": given,
                        "prefix": clean(prefix),
                        "suffix": clean(suffix),
                    }
                )
            )
    return tuple(names)


def _addresses(pid: Segment, reading: Reading) -> tuple[Address, ...]:
    addresses: list[Address] = []
    for index, rep in enumerate(pid.field(11).repetitions(), start=1):
        if not rep:
            continue
        _, other, city_text, district_text, postcode_text, country_text, type_text = rep.values(7)
        type_code = type_text.strip().upper()
        use = _ADDRESS_USES.get(type_code)
        if use is None:
            reading.warn(f"PID-11[{index}]", f"address type {type_code!r} not recognised")
            use = AddressUse.UNKNOWN
        lines = tuple(line for line in (_street(rep), clean(other)) if line)
        city, district = clean(city_text), clean(district_text)
        postcode, country = clean(postcode_text), clean(country_text)
        if lines or city or district or postcode or country:  # more than a bare use
            addresses.append(
                _ADDRESS(
                    {
                        "use": use,
                        "lines": lines,
                        "city": city,
                        "district": district,
                        "postcode": postcode,
                        "country": country,
                    }
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
