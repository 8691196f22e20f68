"""The resources of one FHIR message: the top-level resource, its entries by reference,
the MessageHeader and the Encounter, each validated with its R4B model when first read,
and references resolved the way FHIR does inside a Bundle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle as BundleModel
from fhir.resources.R4B.encounter import Encounter as EncounterModel
from fhir.resources.R4B.location import Location as LocationModel
from fhir.resources.R4B.messageheader import MessageHeader as MessageHeaderModel
from fhir.resources.R4B.organization import Organization as OrganizationModel
from fhir.resources.R4B.patient import Patient as PatientModel
from fhir.resources.R4B.practitioner import Practitioner as PractitionerModel

from mappings.errors import MappingError
from mappings.fhir.read import shown_code, validate
from mappings.fhir.values import JsonObject, as_object, as_objects, as_text
from mappings.fhir.vocabulary import (
    CARE_EVENT_SYSTEM,
    DAVINCI_EVENT_SYSTEM,
    DAVINCI_KINDS,
    KIND_BY_CODE,
    SNOMED_EVENT_KINDS,
    SNOMED_SYSTEM,
    V2_EVENT_SYSTEM,
)
from mappings.hl7v2.events import SUPPORTED_TRIGGERS
from mappings.model import EventKind

_MODELS: Final[Mapping[str, Any]] = {
    "MessageHeader": MessageHeaderModel,
    "Encounter": EncounterModel,
    "Patient": PatientModel,
    "Location": LocationModel,
    "Organization": OrganizationModel,
    "Practitioner": PractitionerModel,
}
_BUNDLE_TYPES: Final = frozenset({"message", "transaction", "batch"})
_RELATIVE = re.compile(r"(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")


# --- the resources of one message ---------------------------------------------------------------


@dataclass(slots=True)
class Resource:
    """One resource of the message, where it sits, and whether the models have checked it."""

    data: JsonObject
    path: str
    """``Bundle.entry[2].resource``, ``Encounter``, ``Encounter.contained[0]``."""
    container: Resource | None = None
    checked: bool = False
    full_url: str | None = None

    @property
    def type(self) -> str:
        return str(self.data.get("resourceType"))


class Message:
    """The top-level resource, its entries by reference, the header and the Encounter."""

    def __init__(self, top: Resource, entries: list[Resource], header: Resource | None) -> None:
        self.top = top
        self.entries = entries
        self.header = header
        self.by_url: dict[str, Resource] = {}
        self.by_key: dict[tuple[str, str], Resource] = {}
        for entry in entries:
            if entry.full_url:
                self.by_url.setdefault(entry.full_url, entry)
            if isinstance(entry.data.get("id"), str):
                self.by_key.setdefault((entry.type, entry.data["id"]), entry)

    @classmethod
    def open(cls, document: JsonObject) -> Message:
        resource_type = document.get("resourceType")
        if resource_type == "Bundle":
            return cls._bundle(document)
        if resource_type == "Encounter":
            top = Resource(document, "Encounter")
            message = cls(top, [top], None)
            message.checked(top)
            return message
        if not isinstance(resource_type, str):
            raise MappingError("resourceType missing", location="resourceType", code="101")
        raise MappingError(
            f"resource type {shown_code(resource_type)} on its own is not a care event: send an "
            "Encounter, or a message, transaction or batch Bundle",
            location="resourceType",
            code="200",
        )

    @classmethod
    def _bundle(cls, document: JsonObject) -> Message:
        shell = dict(document)
        raw_entries = document.get("entry")
        if isinstance(raw_entries, list):
            shell["entry"] = [
                {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                for e in raw_entries
            ]
        validate(BundleModel, shell, "Bundle")
        bundle_type = document.get("type")
        if bundle_type not in _BUNDLE_TYPES:
            raise MappingError(
                f"Bundle type {shown_code(bundle_type)} is not supported: send a message, "
                "transaction or batch Bundle",
                location="Bundle.type",
                code="200" if isinstance(bundle_type, str) else "101",
            )
        top = Resource(document, "Bundle", checked=True)
        entries: list[Resource] = []
        for index, entry in enumerate(as_objects(raw_entries)):
            resource = entry.get("resource")
            path = f"Bundle.entry[{index}].resource"
            if resource is None:
                continue  # a transaction's DELETE, a batch's GET
            if not isinstance(resource, dict):
                raise MappingError("a resource is a JSON object", location=path, code="102")
            if not isinstance(resource.get("resourceType"), str):
                raise MappingError(
                    "resourceType missing", location=f"{path}.resourceType", code="101"
                )
            entries.append(Resource(resource, path, full_url=as_text(entry.get("fullUrl"))))
        header = next((e for e in entries if e.type == "MessageHeader"), None)
        if bundle_type == "message" and (not entries or entries[0].type != "MessageHeader"):
            raise MappingError(
                "a message Bundle starts with its MessageHeader",
                location="Bundle.entry[0].resource",
                code="100",
            )
        message = cls(top, entries, header)
        if header is not None:
            message.checked(header)
        return message

    def checked(self, resource: Resource) -> Resource:
        """The resource, once the R4B model of its type has validated it."""
        if resource.checked:
            return resource
        model = _MODELS.get(resource.type)
        if model is not None:
            validate(model, resource.data, resource.path)
        resource.checked = True
        return resource

    def resolve(self, reference: Any, holder: Resource, *types: str) -> Resource | None:
        """The resource a Reference points to inside this message, validated; None if absent."""
        ref = as_text(reference.get("reference")) if isinstance(reference, dict) else None
        if ref is None:
            return None
        found: Resource | None = None
        if ref.startswith("#"):
            container = holder.container or holder
            for index, item in enumerate(as_objects(container.data.get("contained"))):
                if item.get("id") == ref[1:]:
                    path = f"{container.path}.contained[{index}]"
                    found = Resource(item, path, container, checked=container.checked)
                    break
        else:
            found = self.by_url.get(ref)
            match = _RELATIVE.fullmatch(ref) if found is None else None
            if match is not None:
                found = self.by_key.get((match[1], match[2]))
        if found is None or (types and found.type not in types):
            return None
        return self.checked(found)

    def of_type(self, resource_type: str) -> list[Resource]:
        return [e for e in self.entries if e.type == resource_type]

    def header_event(self) -> tuple[EventKind | None, str | None]:
        """The event the MessageHeader names, if it is one we know, and its code."""
        if self.header is None:
            return None, None
        coding = as_object(self.header.data.get("eventCoding"))
        if coding is None:
            uri = as_text(self.header.data.get("eventUri"))
            return None, uri
        system, code = as_text(coding.get("system")), as_text(coding.get("code"))
        if code is None:
            return None, None
        kind: EventKind | None = None
        if system == CARE_EVENT_SYSTEM:
            kind = KIND_BY_CODE.get(code)
        elif system == DAVINCI_EVENT_SYSTEM:
            kind = DAVINCI_KINDS.get(code)
        elif system == SNOMED_SYSTEM:
            kind = SNOMED_EVENT_KINDS.get(code)
        elif system == V2_EVENT_SYSTEM and code in SUPPORTED_TRIGGERS:
            kind = SUPPORTED_TRIGGERS[code].kind
        return kind, code

    def encounter(self) -> Resource | None:
        """The Encounter the message is about: the header's focus, else the only one."""
        if self.top.type == "Encounter":
            return self.top
        encounters = self.of_type("Encounter")
        focus = self.focus()
        focused = [f for f in focus if f.type == "Encounter"]
        if focus and not focused and not any(f.type == "Patient" for f in focus):
            raise MappingError(
                f"MessageHeader.focus names {shown_code(focus[0].type)}, not an Encounter or a "
                "Patient: only encounter and patient events are mapped",
                location=f"{self.header_path}.focus",
                code="200",
            )
        if focused:
            return self.checked(focused[0])
        if len(encounters) == 1:
            return self.checked(encounters[0])
        if len(encounters) > 1:
            raise MappingError(
                "more than one Encounter and no MessageHeader.focus naming one",
                location="Bundle.entry",
                code="100",
            )
        return None

    def focus(self) -> list[Resource]:
        if self.header is None:
            return []
        found = (self.resolve(f, self.header) for f in as_objects(self.header.data.get("focus")))
        return [f for f in found if f is not None]

    @property
    def header_path(self) -> str:
        return self.header.path if self.header is not None else "Bundle"
