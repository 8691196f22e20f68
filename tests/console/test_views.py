"""The console's pages as pure functions of the store's view models: no database, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from engine.console.auth import Principal
from engine.console.metrics import prometheus
from engine.console.templates import MASK
from engine.console.views.message import message_page
from engine.console.views.search import search_page
from engine.store.console_models import (
    AttemptView,
    DeliveryState,
    DeliveryView,
    DestinationFigures,
    EventView,
    Figures,
    LoggedMessage,
    MessageDetail,
    MessagePage,
    MessageSummary,
    SourceFigures,
)
from engine.store.console_reads import delivery_state
from engine.store.statuses import DeliveryStatus, MessageStatus

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
VIEWER = Principal("vera", "viewer", "session", "s")
CLINICAL = Principal("clara", "clinical", "session", "s")
OPERATOR = Principal("olive", "operator", "session", "s")
SECRET = "O'BRIEN <b>"


def message(**kw: object) -> LoggedMessage:
    values: dict[str, object] = dict(
        id=7, source="mh-trust", message_key="m7", format="hl7v2", status=MessageStatus.ACCEPTED,
        reason=SECRET, error_location=None, error_code=None,
        payload=f"MSH|x\rPID|1||{SECRET}".encode(), payload_sha256="0" * 64, received_at=T0,
        committed_at=T0, transport_id=None, duplicate_of=None, event_id="ev-7",
        event_kind="discharge", patient_key="nhs:9434765919", resolved_at=None, resolved_by=None,
        resolution=None,
    )  # fmt: skip
    return LoggedMessage(**{**values, **kw})  # type: ignore[arg-type]


def delivery(state: DeliveryState, **kw: object) -> DeliveryView:
    values: dict[str, object] = dict(
        id=3, event_id="ev-7", destination="gp", patient_key="nhs:9434765919",
        status=DeliveryStatus.DEAD, state=state, idempotency_key="ev-7.gp", attempt_count=1,
        created_at=T0, next_attempt_at=T0, lease_until=None, lease_owner=None, delivered_at=None,
        last_error=f"422 {SECRET}", hold=False, resolved_at=None, resolved_by=None,
        resolution=None, held_at=None, held_by=None,
        attempts=(AttemptView(1, 3, T0, 12, "permanent", 422, f"bad {SECRET}"),),
    )  # fmt: skip
    return DeliveryView(**{**values, **kw})  # type: ignore[arg-type]


EVENT = EventView("ev-7", 7, "mh-trust", "discharge", "mental_health", "nhs:9434765919", T0, T0,
                  '{"family": "O\'BRIEN"}', None, None)  # fmt: skip


def page(principal: Principal, state: DeliveryState = DeliveryState.DEAD) -> str:
    detail = MessageDetail(message(), EVENT, (delivery(state),))
    return message_page(principal, detail, [], "tok", lambda d, body: f"for {d}", can_remap=True)


def test_a_viewer_sees_no_patient_data_on_a_message_page() -> None:
    shown = page(VIEWER)
    assert "9434765919" not in shown
    assert "BRIEN" not in shown
    assert MASK in shown
    assert "Payload and patient details are not shown" in shown
    assert "Rendered for" not in shown


def test_a_clinical_user_reads_the_payload_escaped_and_the_rendered_payload() -> None:
    shown = page(CLINICAL)
    assert "O&#x27;BRIEN &lt;b&gt;" in shown
    assert "<b>" not in shown
    assert "PID|1||" in shown
    assert "<summary>Rendered for gp</summary><pre>for gp</pre>" in shown
    assert "<form" not in shown  # clinical users read; operators act


def test_an_operator_is_offered_what_the_deliverys_state_allows() -> None:
    def offered(state: DeliveryState) -> list[str]:
        shown = page(OPERATOR, state)
        verbs = ("replay", "resolve", "hold", "release")
        return [v for v in verbs if f'action="/deliveries/3/{v}"' in shown]

    assert offered(DeliveryState.DEAD) == ["replay", "resolve"]
    assert offered(DeliveryState.RESOLVED) == ["replay"]
    assert offered(DeliveryState.PENDING) == ["hold"]
    assert offered(DeliveryState.HELD) == ["release"]
    assert 'action="/messages/7/remap"' in page(OPERATOR)


def test_a_renderer_that_fails_is_named_not_raised() -> None:
    detail = MessageDetail(message(), EVENT, (delivery(DeliveryState.DEAD),))
    shown = message_page(CLINICAL, detail, [], "tok", lambda d, body: str(1 / 0))
    assert "cannot render: ZeroDivisionError" in shown


def test_the_search_pages_older_link_keeps_only_the_search_filters() -> None:
    states = (("gp", DeliveryState.DELIVERED), ("team", DeliveryState.DEAD))
    row = MessageSummary(9, T0, "acute", "m9", "hl7v2", MessageStatus.ACCEPTED, "discharge",
                         "nhs:9434765919", None, None, "ev-9", None, states)  # fmt: skip
    shown = search_page(OPERATOR, {"source": "acute", "junk": "x"}, MessagePage((row,), 9))
    assert "gp: delivered, team: dead" in shown
    assert '<a id="older" href="/messages?source=acute&amp;before=9">Older</a>' in shown


def test_a_delivery_state_refines_the_stored_status() -> None:
    def state(status: str, held: bool = False, resolved: bool = False) -> DeliveryState:
        row = SimpleNamespace(
            status=status, held_at=T0 if held else None, resolved_at=T0 if resolved else None
        )
        return delivery_state(row)

    assert state("pending") == DeliveryState.PENDING
    assert state("pending", held=True) == DeliveryState.HELD
    assert state("dead") == DeliveryState.DEAD
    assert state("dead", resolved=True) == DeliveryState.RESOLVED
    assert state("delivered") == DeliveryState.DELIVERED


def test_prometheus_text_from_figures() -> None:
    figures = Figures(
        T0,
        {"mh-trust": SourceFigures({"accepted": 3}, T0)},
        {
            'g"p': DestinationFigures(
                {"pending": 2}, T0 - timedelta(seconds=90), None, {"delivered": 3, "transient": 1}
            )
        },
    )
    text = prometheus(figures)
    assert 'carebridge_messages{source="mh-trust",status="accepted"} 3' in text
    assert 'carebridge_backlog_oldest_age_seconds{destination="g\\"p"} 90' in text
    assert "# TYPE carebridge_attempts_recent gauge" in text
    assert figures.destinations['g"p'].error_rate == 0.25
    assert DestinationFigures().error_rate is None
