"""The patient of a FHIR message: the Encounter's subject (or the focus Patient), its
identifiers, names, addresses and the rest, and the records a merge retires.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final
from urllib.parse import unquote

from mappings import nhs_number
from mappings.codes import ETHNIC_CATEGORIES, ETHNIC_CATEGORY_ENGLAND, local_system
from mappings.errors import MappingError
from mappings.fhir.gp import read_gp
from mappings.fhir.message import Message, Resource
from mappings.fhir.read import shown_code
from mappings.fhir.values import (
    JsonObject,
    as_object,
    as_objects,
    as_text,
    as_texts,
    codings_of,
    extensions_of,
    fhir_instant,
    first_code,
    logical_ods,
)
from mappings.fhir.vocabulary import (
    CONFIDENTIALITY_SYSTEM,
    ETHNIC_CATEGORY_URL,
    IDENTIFIER_TYPE_SYSTEM,
    LOCAL_IDENTIFIER_PREFIX,
    NHS_NUMBER_OID,
    NHS_NUMBER_VERIFICATION_URL,
    NOT_REAL_NHS_NUMBER_SYSTEM,
)
from mappings.hl7v2.types import Reading
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

# --- the patient --------------------------------------------------------------------------------

_NAME_USES: Final = {
    "official": NameUse.OFFICIAL,
    "usual": NameUse.USUAL,
    "nickname": NameUse.ALIAS,
    "anonymous": NameUse.ALIAS,
    "temp": NameUse.ALIAS,
    "old": NameUse.OLD,
    "maiden": NameUse.MAIDEN,
}
_GENDERS: Final = {g.value: g for g in Gender}
_ADDRESS_USES: Final = {
    "home": AddressUse.HOME,
    "work": AddressUse.WORK,
    "temp": AddressUse.TEMPORARY,
    "old": AddressUse.OLD,
    "billing": AddressUse.POSTAL,
}
_HIDDEN: Final = frozenset({"R", "V"})


class PatientReader:
    def __init__(self, message: Message, reading: Reading) -> None:
        self.message = message
        self.reading = reading

    def subject(self, encounter: Resource | None) -> tuple[Resource | None, Patient]:
        """The patient resource and the mapped patient: the Encounter's subject, which must
        resolve or at least carry an identifier (a care event about an unknown person is
        useless); without an Encounter, the focus Patient (else the one not replaced)."""
        if encounter is not None:
            subject = encounter.data.get("subject")
            path = f"{encounter.path}.subject"
            if not isinstance(subject, dict):
                raise MappingError("the Encounter has no subject", location=path, code="101")
            resource = self.message.resolve(subject, encounter)
            if resource is not None and resource.type != "Patient":
                raise MappingError(
                    f"the subject is a {shown_code(resource.type)}, not a Patient",
                    location=path,
                    code="102",
                )
            if resource is None:
                return None, self._logical(subject, path)
            return resource, self.patient(resource)
        resource = self._person()
        return resource, self.patient(resource)

    def _person(self) -> Resource:
        focused = [f for f in self.message.focus() if f.type == "Patient"]
        patients = focused or [
            p for p in self.message.of_type("Patient") if not _links(p.data, "replaced-by")
        ]
        if not patients:
            raise MappingError("no Patient in the message", location="Bundle.entry", code="101")
        return self.message.checked(patients[0])

    def _logical(self, subject: JsonObject, path: str) -> Patient:
        identifier = as_object(subject.get("identifier"))
        if identifier is None or as_text(identifier.get("value")) is None:
            raise MappingError(
                "the patient is not in the message and the reference has no identifier",
                location=path,
                code="101",
            )
        self.reading.warn(path, "patient not in the message; only the reference's identifier used")
        found = self._identifier(identifier, f"{path}.identifier")
        return Patient(identifiers=(found,) if found else ())

    def patient(self, resource: Resource) -> Patient:
        data, path = resource.data, resource.path
        identifiers = self.identifiers(resource)
        birth_date, birth_text = self._birth_date(data.get("birthDate"), f"{path}.birthDate")
        gender = as_text(data.get("gender"))
        gp_practice, gp_code = read_gp(self.message, resource, self.reading)
        security = as_objects((data.get("meta") or {}).get("security"))
        return Patient(
            identifiers=identifiers,
            names=tuple(n for n in map(_name, as_objects(data.get("name"))) if n is not None),
            birth_date=birth_date,
            birth_date_original=birth_text,
            gender=_GENDERS.get(gender or ""),
            gender_original=gender,
            addresses=tuple(a for a in map(_address, as_objects(data.get("address"))) if a),
            ethnic_category=self._ethnic_category(data, path),
            gp_practice_ods=gp_practice,
            gp_code=gp_code,
            deceased_at=fhir_instant(
                data.get("deceasedDateTime"), f"{path}.deceasedDateTime", self.reading
            ),
            nhs_number_status=next(
                (i.verification for i in identifiers if i.verification is not None), None
            ),
            location_hidden=any(
                s.get("system") == CONFIDENTIALITY_SYSTEM and s.get("code") in _HIDDEN
                for s in security
            ),
        )

    def identifiers(self, resource: Resource) -> tuple[Identifier, ...]:
        found: dict[tuple[IdentifierKind, str, str | None], Identifier] = {}
        for index, item in enumerate(as_objects(resource.data.get("identifier"))):
            if item.get("use") == "old":
                continue  # no longer valid: never a key
            identifier = self._identifier(item, f"{resource.path}.identifier[{index}]")
            if identifier is not None:
                found.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
        valid = {i.value for i in found.values() if i.kind is IdentifierKind.NHS_NUMBER}
        if len(valid) > 1:
            self.reading.warn(
                f"{resource.path}.identifier",
                "more than one valid NHS number; none is used as the NHS number",
            )
        return tuple(found.values())

    def _identifier(self, item: JsonObject, path: str) -> Identifier | None:
        value = as_text(item.get("value"))
        if value is None:
            return None
        system = as_text(item.get("system"))
        type_code = first_code(item.get("type"), IDENTIFIER_TYPE_SYSTEM)
        if system not in (NHS_NUMBER_SYSTEM, NHS_NUMBER_OID, NOT_REAL_NHS_NUMBER_SYSTEM):
            if system and system.startswith(LOCAL_IDENTIFIER_PREFIX):
                system = unquote(system.removeprefix(LOCAL_IDENTIFIER_PREFIX))
            assigner = as_object(item.get("assigner")) or {}
            return Identifier(
                kind=IdentifierKind.LOCAL,
                value=value,
                system=system,
                type_code=type_code,
                assigner_ods=logical_ods(assigner),
            )
        number = nhs_number.normalise(value)
        warnings = nhs_number.warnings_for(number)
        for warning in warnings:
            self.reading.warn(path, warning)
        verification = self._verification(item, path)
        valid = nhs_number.is_valid(number)
        return Identifier(
            kind=IdentifierKind.NHS_NUMBER if valid else IdentifierKind.UNVERIFIED_NHS_NUMBER,
            value=number,
            # an invalid number keeps no system: nothing may mistake it for an NHS number
            system=NHS_NUMBER_SYSTEM if valid else None,
            type_code=type_code,
            verification=verification,
            warnings=warnings,
            not_real=self.reading.not_real(number) if valid else None,
        )

    def _verification(self, item: JsonObject, path: str) -> NhsNumberStatus | None:
        for extension in extensions_of(item, NHS_NUMBER_VERIFICATION_URL):
            for coding in codings_of(extension.get("valueCodeableConcept")):
                try:
                    return NhsNumberStatus(as_text(coding.get("code")) or "")
                except ValueError:
                    continue
            self.reading.warn(f"{path}.extension", "NHS number verification status not recognised")
        return None

    def _birth_date(self, value: Any, path: str) -> tuple[date | None, str | None]:
        text = as_text(value)
        if text is None:
            return None, None
        if len(text) < len("YYYY-MM-DD"):
            self.reading.warn(path, "date has no day; only the original text is kept")
            return None, text
        try:
            return date.fromisoformat(text), text
        except ValueError:
            self.reading.warn(path, "not a valid date; ignored")
            return None, None

    def _ethnic_category(self, data: JsonObject, path: str) -> Coding | None:
        for extension in extensions_of(data, ETHNIC_CATEGORY_URL):
            concept = extension.get("valueCodeableConcept")
            for coding in codings_of(concept):
                code = as_text(coding.get("code"))
                if coding.get("system") == ETHNIC_CATEGORY_ENGLAND and code in ETHNIC_CATEGORIES:
                    return Coding(
                        system=ETHNIC_CATEGORY_ENGLAND, code=code, display=ETHNIC_CATEGORIES[code]
                    )
            other = next(iter(codings_of(concept)), None)
            if other is not None and as_text(other.get("code")):
                self.reading.warn(
                    f"{path}.extension", "ethnic category is not in the national list"
                )
                return Coding(
                    system=as_text(other.get("system"))
                    or local_system(self.reading.feed, "ethnic_category"),
                    code=str(other["code"]),
                    display=as_text(other.get("display")),
                )
        return None

    def merge(self, survivor: Resource | None, patient: Patient) -> Merge:
        """A merge: the survivor ``replaces`` the retired record (Patient.link), or the retired
        record in the message says it is ``replaced-by`` the survivor."""
        if survivor is None or not patient.identifiers:
            raise MappingError(
                "the surviving patient has no identifier", location="Patient", code="101"
            )
        records: list[Resource] = []
        found: list[Identifier] = []
        for index, link in enumerate(_links(survivor.data, "replaces")):
            other = as_object(link.get("other")) or {}
            target = self.message.resolve(other, survivor, "Patient")
            if target is not None:
                records.append(target)
            elif (logical := as_object(other.get("identifier"))) is not None:
                one = self._identifier(logical, f"{survivor.path}.link[{index}].other.identifier")
                found.extend([one] if one else [])
        for candidate in self.message.of_type("Patient"):
            if candidate is survivor or any(r.data is candidate.data for r in records):
                continue
            links = _links(candidate.data, "replaced-by")
            if any(
                self.message.resolve(link.get("other"), candidate) is survivor for link in links
            ):
                records.append(self.message.checked(candidate))
        for record in records:
            found.extend(self.identifiers(record))
        retired: dict[tuple[IdentifierKind, str, str | None], Identifier] = {}
        for identifier in found:
            retired.setdefault((identifier.kind, identifier.value, identifier.system), identifier)
        if not retired:
            raise MappingError(
                "the retired patient is missing (Patient.link replaces)",
                location=f"{survivor.path}.link",
                code="101",
            )
        return Merge(survivor=patient.identifiers, retired=tuple(retired.values()))


def _name(item: JsonObject) -> PersonName | None:
    name = PersonName(
        use=_NAME_USES.get(as_text(item.get("use")) or "", NameUse.OFFICIAL),
        family=as_text(item.get("family")),
        given=tuple(as_texts(item.get("given"))),
        prefix=" ".join(as_texts(item.get("prefix"))) or None,
        suffix=" ".join(as_texts(item.get("suffix"))) or None,
    )
    return (
        None
        if (name.family, name.given, name.prefix, name.suffix) == (None, (), None, None)
        else name
    )


def _address(item: JsonObject) -> Address | None:
    use = _ADDRESS_USES.get(as_text(item.get("use")) or "")
    if use is None:
        use = AddressUse.POSTAL if item.get("type") == "postal" else AddressUse.HOME
    address = Address(
        use=use,
        lines=tuple(as_texts(item.get("line"))),
        city=as_text(item.get("city")),
        district=as_text(item.get("district")),
        postcode=as_text(item.get("postalCode")),
        country=as_text(item.get("country")),
    )
    return None if address == Address(use=use) else address


def _links(data: JsonObject, link_type: str) -> list[JsonObject]:
    return [link for link in as_objects(data.get("link")) if link.get("type") == link_type]
