"""A discharge as the ITK3 message a GP system takes over MESH: an ITK-Message-Bundle-1 whose
first entry is an ITK-MessageHeader-2 (the handling specification asks for infrastructure and
business acknowledgements), the sending organisation, and the Transfer of Care document.

Mental health discharges go on workflow ``TOC_FHIR_MH_DISCH`` (event ITK004D, the Mental Health
eDischarge), acute ones on ``TOC_FHIR_IP_DISCH`` (event ITK003D, the eDischarge); the answers
come back on the same workflow with ``_ACK``. Every id is a version-5 UUID of the delivery's
idempotency key (the message) or of the event (the document), so a resend is the same message:
the receiver recognises it (ITK3 response 20007, duplicate message). Sources in docs/mesh.md.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from mappings.clinical.follow_up import FollowUpRule, follow_up_for
from mappings.clinical.notification import render_notification
from mappings.errors import MappingError
from mappings.itk3.document import GP_NOT_KNOWN, NHS_STU3, Document, document_bundle, uid
from mappings.itk3.xml import add, coding, identifier, profile, reference, root, serialise
from mappings.model import CareEvent, CareSetting, EventKind

EVENT_SYSTEM: Final = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2"
RECIPIENT_TYPE_SYSTEM: Final = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1"
HANDLING: Final = NHS_STU3 + "Extension-ITK-MessageHandling-2"
MESSAGE_DEFINITIONS: Final = "https://fhir.nhs.uk/STU3/MessageDefinition/"


@dataclass(frozen=True, slots=True)
class Workflow:
    """One Transfer of Care workflow: its MESH workflow id and what its messages carry."""

    workflow_id: str
    event_code: str
    event_display: str
    message_definition: str
    composition_profile: str
    title: str

    @property
    def ack_workflow_id(self) -> str:
        return f"{self.workflow_id}_ACK"


MENTAL_HEALTH: Final = Workflow(
    "TOC_FHIR_MH_DISCH", "ITK004D", "ITK Mental Health eDischarge",
    MESSAGE_DEFINITIONS + "ITK-MH-eDischarge-MessageDefinition-4",
    NHS_STU3 + "CareConnect-ITK-MH-Composition-1", "Mental health inpatient discharge summary",
)  # fmt: skip
ACUTE: Final = Workflow(
    "TOC_FHIR_IP_DISCH", "ITK003D", "ITK eDischarge",
    MESSAGE_DEFINITIONS + "ITK-eDischarge-MessageDefinition-4",
    NHS_STU3 + "CareConnect-ITK-EDIS-Composition-1", "Inpatient discharge summary",
)  # fmt: skip
WORKFLOWS: Final = {CareSetting.MENTAL_HEALTH: MENTAL_HEALTH, CareSetting.ACUTE: ACUTE}
ACK_WORKFLOWS: Final = frozenset(w.ack_workflow_id for w in WORKFLOWS.values())


@dataclass(frozen=True, slots=True)
class Addressing:
    sender_ods: str
    """The discharging organisation (the trust)."""
    sender_mailbox: str
    """The trust's MESH mailbox: where acknowledgements come back (MessageHeader.source)."""
    recipient_type: Literal["FA", "FI"] = "FA"
    """For Action (a GP who must act on the follow-up) or For Information."""


@dataclass(frozen=True, slots=True)
class Itk3Message:
    body: bytes
    """The ITK3 message, FHIR STU3 XML."""
    header_id: str
    """MessageHeader.id: what an ITK3 response names in ``response.identifier``."""
    workflow: Workflow
    subject: str
    """A MESH subject line without patient data."""


def workflow_for(event: CareEvent, subject: CareEvent | None = None) -> Workflow | None:
    """The workflow a discharge (or the withdrawal of one, by its `subject`) goes on, or None
    when the event sends nothing over MESH (not a discharge; no Transfer of Care workflow for
    its care setting)."""
    if event.kind not in (EventKind.DISCHARGE, EventKind.CANCEL_DISCHARGE):
        return None
    stay = (subject or event).stay
    return WORKFLOWS.get(stay.care_setting) if stay else None


def render_discharge_message(
    event: CareEvent,
    *,
    key: str,
    addressing: Addressing,
    now: datetime,
    rules: Sequence[FollowUpRule],
    subject: CareEvent | None = None,
) -> Itk3Message:
    """The ITK3 message of a discharge, or of its withdrawal (a cancelled discharge: the
    document marked entered-in-error, replacing the original's). `key` is the delivery's
    idempotency key (the MESH local id), `subject` the discharge a withdrawal withdraws, when
    it is known. MappingError when the event cannot go (no workflow; no NHS number, without
    which no GP system can file it)."""
    about = subject or event
    workflow = workflow_for(event, subject)
    if workflow is None:
        raise MappingError("not a discharge from mental health or acute inpatient care")
    if about.patient.nhs_number is None:
        raise MappingError("no verified NHS number: a GP system cannot file the document")
    follow_up = follow_up_for(about, rules) if about.kind is EventKind.DISCHARGE else None
    note = render_notification(event, follow_up, recipient="GP practice", now=now, rules=rules)
    lines = tuple(line for line in note.text.splitlines() if not line.startswith("Acknowledge:"))
    withdrawal = event.kind is EventKind.CANCEL_DISCHARGE
    doc = Document(
        composition_profile=workflow.composition_profile, title=workflow.title,
        sender_ods=addressing.sender_ods, gp_ods=about.patient.gp_practice_ods or GP_NOT_KNOWN,
        lines=lines, follow_up=follow_up, now=now,
        replaces=(event.corrects_event_id or about.event_id) if withdrawal else None,
    )  # fmt: skip
    bundle = root("Bundle")
    header_id = uid(key, "message-header")
    add(bundle, "id", uid(key, "message"))
    profile(bundle, NHS_STU3 + "ITK-Message-Bundle-1")
    identifier(bundle, "https://tools.ietf.org/html/rfc4122", uid(key, "message"))
    add(bundle, "type", "message")
    entry = add(bundle, "entry")
    add(entry, "fullUrl", f"urn:uuid:{header_id}")
    header = add(add(entry, "resource"), "MessageHeader")
    entry = add(bundle, "entry")
    add(entry, "fullUrl", f"urn:uuid:{uid(key, 'message-sender')}")
    sender = add(add(entry, "resource"), "Organization")
    add(sender, "id", uid(key, "message-sender"))
    profile(sender, NHS_STU3 + "CareConnect-ITK-Header-Organization-1")
    identifier(sender, "https://fhir.nhs.uk/Id/ods-organization-code", addressing.sender_ods)
    entry = add(bundle, "entry")
    add(entry, "fullUrl", f"urn:uuid:{uid(event.event_id, 'document')}")
    focus = document_bundle(add(entry, "resource"), event, doc)
    _header(header, header_id, workflow, addressing, key, now, focus)
    what = "withdrawal of a discharge summary" if withdrawal else "discharge summary"
    return Itk3Message(serialise(bundle), header_id, workflow, f"{workflow.title}: {what}")


def _header(
    header: ET.Element, header_id: str, workflow: Workflow, addressing: Addressing, key: str,
    now: datetime, focus: str,
) -> None:  # fmt: skip
    add(header, "id", header_id)
    profile(header, NHS_STU3 + "ITK-MessageHeader-2")
    handling = add(header, "extension", url=HANDLING)
    add(add(handling, "extension", url="BusAckRequested"), "valueBoolean", "true")
    add(add(handling, "extension", url="InfAckRequested"), "valueBoolean", "true")
    recipient = add(handling, "extension", url="RecipientType")
    display = "For Action" if addressing.recipient_type == "FA" else "For Information"
    coding(recipient, "valueCoding", RECIPIENT_TYPE_SYSTEM, addressing.recipient_type, display)
    definition = add(handling, "extension", url="MessageDefinition")
    reference(definition, "valueReference", workflow.message_definition)
    add(add(handling, "extension", url="SenderReference"), "valueString", key[:255])
    coding(header, "event", EVENT_SYSTEM, workflow.event_code, workflow.event_display)
    reference(header, "sender", f"urn:uuid:{uid(key, 'message-sender')}")
    add(header, "timestamp", now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    add(add(header, "source"), "endpoint", addressing.sender_mailbox)
    reference(header, "focus", f"urn:uuid:{focus}")
