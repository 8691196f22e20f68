"""The GP practice's side of ITK3, written for the tests without the engine's code: reading a
message that arrived, and writing the ITK3 responses a GP system sends back (ITK3 Messaging
Distribution: a message Bundle, MessageHeader event ITK008M whose response names the original
MessageHeader, an OperationOutcome with the ITK3 response code)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

F = "{http://hl7.org/fhir}"
X = "{http://www.w3.org/1999/xhtml}"
NEGATIVE_SEVERITY = "fatal"


def fhir_value(element: ET.Element, path: str) -> str | None:
    found = element.find("/".join(F + step for step in path.split("/")))
    return found.get("value") if found is not None else None


def fhir_text(bundle: ET.Element) -> str:
    """Every narrative paragraph of the document, one per line."""
    return "\n".join(p.text or "" for p in bundle.iter(f"{X}p"))


def _el(parent: ET.Element, name: str, value: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, name)
    if value is not None:
        element.set("value", value)
    return element


def ack_xml(
    responds_to: str, code: str | None, *, diagnostics: str | None = None, sender: str = "Y99901"
) -> bytes:
    """An ITK3 response to the message whose MessageHeader id is `responds_to`, carrying ITK3
    response `code` (none: an infrastructure "ok" in the MessageHeader alone)."""
    positive = code in (None, "20013", "30001")
    bundle = ET.Element("Bundle", {"xmlns": "http://hl7.org/fhir"})
    _el(bundle, "id", str(uuid.uuid4()))
    _el(_el(bundle, "meta"), "profile",
        "https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1")  # fmt: skip
    _el(bundle, "type", "message")
    header_id, outcome_id = str(uuid.uuid4()), str(uuid.uuid4())
    header = _el(_el(_el(bundle, "entry"), "resource"), "MessageHeader")
    _el(header, "id", header_id)
    event = _el(header, "event")
    _el(event, "system", "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2")
    _el(event, "code", "ITK008M")
    _el(event, "display", "ITK Response")
    _el(header, "timestamp", "2026-02-02T11:00:00+00:00")
    _el(_el(header, "source"), "endpoint", sender)
    response = _el(header, "response")
    _el(response, "identifier", responds_to)
    _el(response, "code", "ok" if positive else "fatal-error")
    if code is not None:
        _el(_el(header, "focus"), "reference", f"urn:uuid:{outcome_id}")
        outcome = _el(_el(_el(bundle, "entry"), "resource"), "OperationOutcome")
        _el(outcome, "id", outcome_id)
        issue = _el(outcome, "issue")
        _el(issue, "severity", "information" if positive else NEGATIVE_SEVERITY)
        _el(issue, "code", "informational" if positive else "processing")
        coding = _el(_el(issue, "details"), "coding")
        _el(coding, "system", "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1")
        _el(coding, "code", code)
        if diagnostics:
            _el(issue, "diagnostics", diagnostics)
    written: bytes = ET.tostring(bundle, encoding="utf-8", xml_declaration=True)
    return written
