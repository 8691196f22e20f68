"""FHIR out: the Patient (identifiers, names, addresses, GP) and, for a merge, the retired
Patient. Location hiding (ZU8) leaves the address and GP out and marks the Patient restricted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote

from mappings.codes import NHS_NUMBER_STATUSES
from mappings.fhir.outbound.resources import (
    PROFILE,
    Resources,
    as_concept,
    compact,
    fhir_date_time,
    instant_text,
)
from mappings.fhir.vocabulary import (
    CONFIDENTIALITY_SYSTEM,
    ETHNIC_CATEGORY_URL,
    GMP_NUMBER_SYSTEM,
    IDENTIFIER_TYPE_SYSTEM,
    LOCAL_IDENTIFIER_PREFIX,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    NHS_NUMBER_VERIFICATION_URL,
    NOT_REAL_NHS_NUMBER_SYSTEM,
)
from mappings.model import (
    NHS_NUMBER_SYSTEM,
    ODS_ORGANISATION_SYSTEM,
    Address,
    AddressUse,
    Identifier,
    IdentifierKind,
    NameUse,
    NhsNumberStatus,
    Patient,
    PersonName,
)

_NAME_USES: Final = {
    NameUse.OFFICIAL: "official",
    NameUse.USUAL: "usual",
    NameUse.ALIAS: "nickname",
    NameUse.OLD: "old",
    NameUse.MAIDEN: "maiden",
}
_ADDRESS_USES: Final = {
    AddressUse.HOME: "home",
    AddressUse.WORK: "work",
    AddressUse.TEMPORARY: "temp",
    AddressUse.OLD: "old",
}


def patient_resource(out: Resources, patient: Patient) -> dict[str, Any]:
    hidden = patient.location_hidden
    meta: dict[str, Any] = {"profile": [PROFILE + "Patient"]}
    if out.event.stay is None and (recorded := instant_text(out.event.recorded_at)):
        meta["lastUpdated"] = recorded  # the focus carries when the event was recorded
    if hidden:
        meta["security"] = [
            {"system": CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}
        ]
    return compact(
        {
            "resourceType": "Patient",
            "meta": meta,
            "extension": (
                [
                    {
                        "url": ETHNIC_CATEGORY_URL,
                        "valueCodeableConcept": as_concept(patient.ethnic_category),
                    }
                ]
                if patient.ethnic_category
                else None
            ),
            "identifier": _identifiers(patient.identifiers),
            "name": [_name(n) for n in patient.names],
            "gender": patient.gender.value if patient.gender else None,
            "birthDate": _birth_date(patient),
            "deceasedDateTime": (
                fhir_date_time(patient.deceased_at) if patient.deceased_at else None
            ),
            "address": None if hidden else [_address(a) for a in patient.addresses],
            "generalPractitioner": None if hidden else _general_practitioner(patient),
        }
    )


def retired_reference(out: Resources, survivor: dict[str, str]) -> dict[str, str]:
    """The retired record of a merge: inactive, replaced by the survivor."""
    merge = out.event.merge
    assert merge is not None
    return out.add(
        "retired-patient",
        {
            "resourceType": "Patient",
            "meta": {"profile": [PROFILE + "Patient"]},
            "identifier": _identifiers(merge.retired),
            "active": False,
            "link": [{"other": survivor, "type": "replaced-by"}],
        },
    )


def _identifiers(identifiers: Iterable[Identifier]) -> list[dict[str, Any]]:
    """NHS numbers with their verification status, and local identifiers. A number that
    failed the check digit is not sent: nothing downstream may take it for one. A valid number
    that cannot be a real patient's (`Identifier.not_real`) goes under the engine's own
    not-real system, without verification status or NH type."""
    rendered: list[dict[str, Any]] = []
    for identifier in identifiers:
        if identifier.kind is IdentifierKind.UNVERIFIED_NHS_NUMBER:
            continue
        item: dict[str, Any] = {}
        if identifier.kind is IdentifierKind.NHS_NUMBER and identifier.not_real:
            # not a real patient's: never the NHS number system, never a verification status
            item["system"] = NOT_REAL_NHS_NUMBER_SYSTEM
        elif identifier.kind is IdentifierKind.NHS_NUMBER:
            item["system"] = NHS_NUMBER_SYSTEM
            if identifier.verification is not None:
                item["extension"] = [_verification(identifier.verification)]
        elif identifier.system:
            item["system"] = (
                identifier.system
                if ":" in identifier.system
                else LOCAL_IDENTIFIER_PREFIX + quote(identifier.system, safe="")
            )
        if identifier.type_code and not identifier.not_real:
            item["type"] = {
                "coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": identifier.type_code}]
            }
        item["value"] = identifier.value
        if identifier.assigner_ods:
            item["assigner"] = {
                "identifier": {
                    "system": ODS_ORGANISATION_SYSTEM,
                    "value": identifier.assigner_ods,
                }
            }
        rendered.append(item)
    return rendered


def _verification(status: NhsNumberStatus) -> dict[str, Any]:
    return {
        "url": NHS_NUMBER_VERIFICATION_URL,
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": NHS_NUMBER_VERIFICATION_SYSTEM,
                    "code": status.value,
                    "display": NHS_NUMBER_STATUSES[status.value],
                }
            ]
        },
    }


def _name(name: PersonName) -> dict[str, Any]:
    return compact(
        {
            "use": _NAME_USES.get(name.use),
            "family": name.family,
            "given": list(name.given),
            "prefix": [name.prefix] if name.prefix else None,
            "suffix": [name.suffix] if name.suffix else None,
        }
    )


def _address(address: Address) -> dict[str, Any]:
    return compact(
        {
            "use": _ADDRESS_USES.get(address.use),
            "type": "postal" if address.use is AddressUse.POSTAL else None,
            "line": list(address.lines),
            "city": address.city,
            "district": address.district,
            "postalCode": address.postcode,
            "country": address.country,
        }
    )


def _birth_date(patient: Patient) -> str | None:
    if patient.birth_date is not None:
        return patient.birth_date.isoformat()
    original = re.sub(r"\D", "", patient.birth_date_original or "")
    if len(original) in (4, 6):
        return "-".join(p for p in (original[:4], original[4:6]) if p)
    return None


def _general_practitioner(patient: Patient) -> list[dict[str, Any]]:
    """Logical references (as NHS England's PDS sends them): the practice by ODS code, the GP
    by GMP code."""
    references = []
    if patient.gp_practice_ods:
        references.append(
            {
                "type": "Organization",
                "identifier": {"system": ODS_ORGANISATION_SYSTEM, "value": patient.gp_practice_ods},
            }
        )
    if patient.gp_code:
        references.append(
            {
                "type": "Practitioner",
                "identifier": {"system": GMP_NUMBER_SYSTEM, "value": patient.gp_code},
            }
        )
    return references
