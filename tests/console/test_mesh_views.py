"""MESH on the console, as pure functions of the view models: a delivery's MESH message and its
ITK3 acknowledgements on the message page, and the kept inbox messages (masked for viewers)."""

from __future__ import annotations

from datetime import timedelta

from engine.console.templates import MASK
from engine.console.views.mesh import inbox_page
from engine.console.views.message import message_page
from engine.store.console_models import (
    DeliveryState,
    KeptInboxMessage,
    MeshAckView,
    MeshView,
    MessageDetail,
)
from tests.console.test_views import CLINICAL, EVENT, SECRET, T0, VIEWER, delivery, message

MESH = MeshView(
    recipient="X26GP0001", recipient_ods="B12345", workflow_id="TOC_FHIR_MH_DISCH",
    local_id="ev-7.gp", itk_message_id="hdr-7", message_id="MESHID0001",
    uploaded_at=T0 + timedelta(minutes=1),
    acks=(MeshAckView("infrastructure", "20013", True, "Success", T0 + timedelta(minutes=2)),
          MeshAckView("business", "30002", False, f"Patient not known here {SECRET}",
                      T0 + timedelta(minutes=3))),
)  # fmt: skip


def mesh_page(principal: object) -> str:
    d = delivery(DeliveryState.DEAD, mesh=MESH)
    detail = MessageDetail(message(), EVENT, (d,))
    return message_page(principal, detail, [], "tok", None)  # type: ignore[arg-type]


def test_the_message_page_shows_the_mesh_message_and_its_acknowledgements() -> None:
    shown = mesh_page(CLINICAL)
    for fact in ("TOC_FHIR_MH_DISCH", "X26GP0001", "B12345", "MESHID0001", "ev-7.gp", "20013",
                 "30002", "NEGATIVE", "Patient not known here"):  # fmt: skip
        assert fact in shown
    assert "uploaded to MESH X26GP0001" in shown  # the timeline
    assert "ITK3 business negative 30002" in shown


def test_a_viewer_does_not_see_an_acknowledgement_s_text() -> None:
    shown = mesh_page(VIEWER)
    assert "MESHID0001" in shown
    assert "Patient not known here" not in shown
    assert MASK in shown


def test_kept_inbox_messages_are_listed_with_their_payload_for_clinical_roles() -> None:
    kept = KeptInboxMessage("M1", "gp-mesh", T0, "X26GP0001", "TOC_FHIR_MH_DISCH_ACK", None,
                            "unreadable", "not an ITK3 response: not well-formed XML",
                            b"<oops " + SECRET.encode())  # fmt: skip
    shown = inbox_page(CLINICAL, [kept])
    assert "unreadable" in shown
    assert "not well-formed XML" in shown
    assert "&lt;oops" in shown  # escaped, never markup
    assert "<oops" not in shown
    masked = inbox_page(VIEWER, [kept])
    assert "oops" not in masked
    assert "M1" in masked
    assert "No MESH inbox message" in inbox_page(CLINICAL, [])
