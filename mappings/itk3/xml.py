"""Writing and reading FHIR STU3 XML with the standard library's ElementTree: every primitive is a
``value`` attribute, resources sit in the ``http://hl7.org/fhir`` namespace, narrative in XHTML.

Writing never parses anything (no entity can be injected: ElementTree escapes every value);
reading takes bytes from outside, so it refuses a document type declaration (no entities, no
external references) before ElementTree sees the text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_F = f"{{{FHIR_NS}}}"


class XmlError(ValueError):
    """The bytes are not a FHIR XML document this reader accepts; the message says why."""


def root(name: str) -> ET.Element:
    return ET.Element(name, {"xmlns": FHIR_NS})


def add(parent: ET.Element, name: str, value: str | None = None, **attrs: str) -> ET.Element:
    """A child element, with ``value`` set when `value` is given."""
    child = ET.SubElement(parent, name, attrs)
    if value is not None:
        child.set("value", value)
    return child


def coding(parent: ET.Element, name: str, system: str, code: str, display: str | None) -> None:
    element = add(parent, name)
    add(element, "system", system)
    add(element, "code", code)
    if display:
        add(element, "display", display)


def identifier(parent: ET.Element, system: str, value: str, name: str = "identifier") -> None:
    element = add(parent, name)
    add(element, "system", system)
    add(element, "value", value)


def reference(parent: ET.Element, name: str, target: str) -> None:
    add(add(parent, name), "reference", target)


def profile(resource: ET.Element, url: str) -> None:
    add(add(resource, "meta"), "profile", url)


def narrative(parent: ET.Element, paragraphs: Iterable[str]) -> None:
    """``text``: generated narrative, one XHTML paragraph per line."""
    text = add(parent, "text")
    add(text, "status", "generated")
    div = ET.SubElement(text, "div", {"xmlns": XHTML_NS})
    for line in paragraphs:
        ET.SubElement(div, "p").text = line


def serialise(element: ET.Element) -> bytes:
    """UTF-8 XML with its declaration, indented (a person reads it in the console and a GP
    system's message log)."""
    ET.indent(element)
    written: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return written


def parse(body: bytes) -> ET.Element:
    """A FHIR XML document's root element; XmlError for anything else."""
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise XmlError("a document type declaration is not accepted")
    try:
        element = ET.fromstring(body)  # noqa: S314 - no DTD, so no entities (checked above)
    except ET.ParseError as exc:
        raise XmlError(f"not well-formed XML ({exc})") from None
    except LookupError as exc:  # an XML declaration naming an encoding that does not exist
        raise XmlError(f"an unknown character encoding ({exc})") from None
    return element


def tag(element: ET.Element) -> str:
    """The element's name in the FHIR namespace ('' for an element outside it)."""
    return element.tag[len(_F) :] if element.tag.startswith(_F) else ""


def child(element: ET.Element, *path: str) -> ET.Element | None:
    found: ET.Element | None = element
    for name in path:
        if found is None:
            return None
        found = found.find(_F + name)
    return found


def children(element: ET.Element, name: str) -> list[ET.Element]:
    return element.findall(_F + name)


def value(element: ET.Element | None, *path: str) -> str | None:
    found = child(element, *path) if element is not None else None
    return found.get("value") if found is not None else None
