"""Reading an ITK3 Response (event ITK008M): which message it answers, at which level, with
which ITK3 response code, and whether that is good news.

The ITK3 Messaging Distribution specification (nhsconnect/ITK3-Messaging-Distribution,
gh-pages, ``pages/explore/explore_response_codes.md`` and ``explore_response_structure.md``):
the MessageHeader's ``response.identifier`` names the MessageHeader of the message answered and
``response.code`` says ok / transient-error / fatal-error; an OperationOutcome carries the ITK3
response code in ``issue.details.coding``. Codes 10001-20013 answer an infrastructure
acknowledgement request (20013 is its one success), 30001-30003 a business one (30001, "patient
known here", its one success). Every negative code is final: no further response follows.
20007/20008 (a duplicate message or document received) are read as positive: the receiver holds
the message, which is all a resend of it needs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final, Literal

from mappings.itk3.xml import XmlError, child, children, parse, tag, value

RESPONSE_EVENT: Final = "ITK008M"
RESPONSE_CODES: Final = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1"
POSITIVE_CODES: Final = frozenset({"20013", "30001"})
DUPLICATE_CODES: Final = frozenset({"20007", "20008"})
"""The receiver already has this message or document: what a resend after a lost answer gets
(the engine resends with the same ids on purpose). Good news, not an error: never a reason to
dead-letter a delivery the receiver holds."""
DISPLAYS: Final = {
    "10001": "Handling Specification Error", "10002": "Infrastructure Level Response Value - "
    "Processing Error", "10003": "Business Level Response Value - Processing Error",
    "10004": "Message Definition Value - Processing Error", "10005": "Message Definition "
    "Version Value - Processing Error", "10007": "Sender Reference Value - Processing Error",
    "10008": "Handling Specification Business Rule Error", "10009": "Unreadable message "
    "received", "10010": "Recipient Type - Processing Error", "20001": "Unrecognised Recipient "
    "Person", "20002": "Unrecognised Recipient Organisation", "20003": "Unrecognised Sender",
    "20004": "Non-Approved file type received as an attachment", "20005": "Unsupported file "
    "type received as an attachment", "20006": "ITK3 Header validation failure",
    "20007": "Duplicate Message received", "20008": "Duplicate Document received",
    "20009": "Payload validation failure", "20010": "Unrecognised Payload Recipient "
    "Organisation", "20011": "Unrecognised Payload Recipient Person", "20012": "Unauthorised "
    "Sender", "20013": "Success", "30001": "Patient known here", "30002": "Patient not known "
    "here", "30003": "Patient no longer at this clinical setting",
}  # fmt: skip
"""The ITK3 response codes and their display names (explore_response_codes.md)."""

Level = Literal["infrastructure", "business"]


@dataclass(frozen=True, slots=True)
class Itk3Response:
    responds_to: str
    """The MessageHeader id of the message this answers."""
    level: Level
    code: str
    """The ITK3 response code (``20013``, ``30002``...); empty when only ``response.code``
    was given (an infrastructure "ok")."""
    response_code: str
    """MessageHeader.response.code: ok, transient-error or fatal-error."""
    positive: bool
    text: str
    """The code's display name and any diagnostics the receiver gave."""


def read_response(body: bytes) -> Itk3Response:
    """The ITK3 response in `body`; XmlError (a ValueError) saying why it is not one."""
    bundle = parse(body)
    if tag(bundle) != "Bundle" or value(bundle, "type") != "message":
        raise XmlError("not a FHIR message Bundle")
    resources = [r for e in children(bundle, "entry") if (r := _resource(e)) is not None]
    header = resources[0] if resources and tag(resources[0]) == "MessageHeader" else None
    if header is None:
        raise XmlError("the Bundle's first entry is not a MessageHeader")
    event = value(header, "event", "code")
    if event != RESPONSE_EVENT:
        raise XmlError(f"not an ITK3 response (event {event or 'missing'}, not {RESPONSE_EVENT})")
    responds_to = value(header, "response", "identifier")
    response_code = value(header, "response", "code")
    if not responds_to or response_code not in ("ok", "transient-error", "fatal-error"):
        raise XmlError("MessageHeader.response needs an identifier and a code")
    code, diagnostics = _itk_code(resources)
    if code and not (code.isdigit() and len(code) == 5 and code[0] in "123"):
        raise XmlError("the ITK3 response code is not one of 10001-30003")
    level: Level = "business" if code.startswith("3") else "infrastructure"
    positive = code in POSITIVE_CODES | DUPLICATE_CODES if code else response_code == "ok"
    text = DISPLAYS.get(code, "ok" if positive else response_code) if code else response_code
    if diagnostics:
        text = f"{text}: {diagnostics}"
    return Itk3Response(responds_to, level, code, response_code, positive, text[:500])


def _resource(entry: ET.Element) -> ET.Element | None:
    holder = child(entry, "resource")
    return next(iter(holder), None) if holder is not None else None


def _itk_code(resources: list[ET.Element]) -> tuple[str, str]:
    """The ITK3 response code of the first OperationOutcome issue that has one, and its
    diagnostics."""
    for resource in resources:
        if tag(resource) != "OperationOutcome":
            continue
        for issue in children(resource, "issue"):
            details = child(issue, "details")
            for coding in children(details, "coding") if details is not None else []:
                if value(coding, "system") == RESPONSE_CODES and (code := value(coding, "code")):
                    return code, (value(issue, "diagnostics") or "")[:300]
    return "", ""
