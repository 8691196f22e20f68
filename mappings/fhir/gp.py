"""The patient's GP from ``Patient.generalPractitioner``: the practice (an ODS organisation
code) and the GP (a GMP code), never dropped silently.

Each reference is read whichever way it comes:

- resolved inside the message: an Organization (its ODS code), a Practitioner (its GMP code),
  or a PractitionerRole (its organization's ODS code and its practitioner's GMP code);
- logical, as PDS and many senders send it: ``{"identifier": {system, value}}`` with or
  without ``type``; without one, the identifier's system says what it is (an ODS organisation
  code is the practice, a GMP number the GP); a relative reference outside the message
  (``Organization/Y12345``) gives its type the same way.

A reference that gives neither is a warning naming it, so an operator sees that the GP was
sent but could not be read, instead of "GP not recorded".
"""

from __future__ import annotations

from typing import Any

from mappings.fhir.message import Message, Resource
from mappings.fhir.values import as_object, as_objects, as_text, identifier_value
from mappings.fhir.vocabulary import GMP_NUMBER_SYSTEM
from mappings.hl7v2.types import Reading
from mappings.model import ODS_ORGANISATION_SYSTEM

_TYPES = ("Organization", "Practitioner", "PractitionerRole")


def read_gp(message: Message, patient: Resource, reading: Reading) -> tuple[str | None, str | None]:
    """(GP practice ODS code, GP's GMP code) from the patient's generalPractitioner."""
    practice = code = None
    for index, reference in enumerate(as_objects(patient.data.get("generalPractitioner"))):
        path = f"{patient.path}.generalPractitioner[{index}]"
        found_practice, found_code = _one(message, patient, reference)
        if found_practice is None and found_code is None:
            reading.warn(
                path,
                "GP reference not readable: no ODS organisation code for a practice and no GMP "
                "number for a GP (in the reference or the resource it names); GP not known",
            )
            continue
        if found_practice and practice and found_practice != practice:
            reading.warn(path, "a second, different GP practice; the first one is used")
        practice = practice or found_practice
        code = code or found_code
    return practice, code


def _one(message: Message, holder: Resource, reference: Any) -> tuple[str | None, str | None]:
    target = message.resolve(reference, holder, *_TYPES)
    if target is None:
        return _logical(reference)
    identifiers = as_objects(target.data.get("identifier"))
    if target.type == "Organization":
        return identifier_value(identifiers, ODS_ORGANISATION_SYSTEM), None
    if target.type == "Practitioner":
        return None, identifier_value(identifiers, GMP_NUMBER_SYSTEM)
    organisation = message.resolve(target.data.get("organization"), target, "Organization")
    practitioner = message.resolve(target.data.get("practitioner"), target, "Practitioner")
    return (
        _ods(organisation) or _logical(target.data.get("organization"))[0],
        _gmp(practitioner) or _logical(target.data.get("practitioner"))[1],
    )


def _logical(reference: Any) -> tuple[str | None, str | None]:
    """A reference outside the message: its identifier, typed by `type`, the reference's own
    resource type, or else the identifier's system."""
    reference = as_object(reference) or {}
    identifier = as_object(reference.get("identifier"))
    if identifier is None:
        return None, None
    declared = as_text(reference.get("type")) or _relative_type(reference.get("reference"))
    ods = identifier_value([identifier], ODS_ORGANISATION_SYSTEM)
    gmp = identifier_value([identifier], GMP_NUMBER_SYSTEM)
    if declared in (None, "Organization") and ods:
        return ods, None
    if declared in (None, "Practitioner", "PractitionerRole") and gmp:
        return None, gmp
    return None, None


def _relative_type(reference: Any) -> str | None:
    text = as_text(reference)
    if text is None or text.startswith(("urn:", "#")):
        return None
    types = [part for part in text.split("/")[:-1] if part.isalpha() and part[:1].isupper()]
    return types[-1] if types else None


def _ods(resource: Resource | None) -> str | None:
    if resource is None:
        return None
    return identifier_value(as_objects(resource.data.get("identifier")), ODS_ORGANISATION_SYSTEM)


def _gmp(resource: Resource | None) -> str | None:
    if resource is None:
        return None
    return identifier_value(as_objects(resource.data.get("identifier")), GMP_NUMBER_SYSTEM)
