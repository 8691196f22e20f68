"""Who is responsible for a FHIR Encounter's stay: the `Clinician` of its primary performer,
else its consultant, else its attender, else an untyped participant.
"""

from __future__ import annotations

from typing import Final

from mappings.fhir.message import Message, Resource
from mappings.fhir.values import (
    JsonObject,
    as_object,
    as_objects,
    as_text,
    as_texts,
    codings_of,
    identifier_value,
)
from mappings.fhir.vocabulary import GMC_NUMBER_SYSTEM
from mappings.model import Clinician

_PARTICIPANT_ORDER: Final = ("PPRF", "CON", "ATND")


def responsible_clinician(message: Message, encounter: Resource) -> Clinician | None:
    """The primary performer, else the consultant, else the attender, else an untyped
    participant: the clinician responsible for the stay."""

    def rank(item: JsonObject) -> int:
        codes = {c.get("code") for t in as_objects(item.get("type")) for c in codings_of(t)}
        order = (i for i, code in enumerate(_PARTICIPANT_ORDER) if code in codes)
        return next(order, len(_PARTICIPANT_ORDER) if not codes else len(_PARTICIPANT_ORDER) + 1)

    for item in sorted(as_objects(encounter.data.get("participant")), key=rank):
        individual = as_object(item.get("individual")) or {}
        practitioner = message.resolve(individual, encounter, "Practitioner")
        logical = as_object(individual.get("identifier"))
        data = practitioner.data if practitioner else {"identifier": [logical]} if logical else None
        clinician = _practitioner(data) if data is not None else None
        if clinician is not None:
            return clinician
    return None


def _practitioner(data: JsonObject) -> Clinician | None:
    identifiers = as_objects(data.get("identifier"))
    gmc = identifier_value(identifiers, GMC_NUMBER_SYSTEM)
    code: str | None
    if gmc is not None:
        # The NHS consultant code is the GMC reference number prefixed with C.
        code = gmc if gmc.upper().startswith("C") else f"C{gmc}"
    else:
        code = next((as_text(i.get("value")) for i in identifiers if as_text(i.get("value"))), None)
    name = next(iter(as_objects(data.get("name"))), {})
    given, prefix = as_texts(name.get("given")), as_texts(name.get("prefix"))
    clinician = Clinician(
        code=code,
        family=as_text(name.get("family")),
        given=given[0] if given else None,
        prefix=prefix[0] if prefix else None,
    )
    return clinician if clinician != Clinician() else None
