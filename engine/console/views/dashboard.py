"""The dashboard: each source's messages and each destination's backlog and error rate."""

from __future__ import annotations

from datetime import datetime

from engine.console.templates import Safe, html, table
from engine.store.console_models import DeliveryState, Figures
from engine.store.statuses import MessageStatus

_DESTINATION_COLUMNS = (
    "destination",
    "pending",
    "oldest pending",
    "held",
    "dead",
    "delivered",
    "last success",
    "error rate (15 min)",
)


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    return f"{seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s"


def dashboard_page(f: Figures) -> Safe:
    sources = table(
        ("source", "accepted", "rejected", "duplicate", "last received"),
        [
            (
                name,
                s.messages.get(MessageStatus.ACCEPTED, 0),
                s.messages.get(MessageStatus.REJECTED, 0),
                s.messages.get(MessageStatus.DUPLICATE, 0),
                s.last_received or "-",
            )
            for name, s in sorted(f.sources.items())
        ],
        "sources",
    )
    dests = table(
        _DESTINATION_COLUMNS,
        [
            (
                name,
                d.deliveries.get(DeliveryState.PENDING, 0),
                _age(f.at, d.oldest_pending),
                d.deliveries.get(DeliveryState.HELD, 0),
                d.deliveries.get(DeliveryState.DEAD, 0),
                d.deliveries.get(DeliveryState.DELIVERED, 0),
                d.last_success or "-",
                "-" if d.error_rate is None else f"{d.error_rate:.0%}",
            )
            for name, d in sorted(f.destinations.items())
        ],
        "destinations",
    )
    return html("<h2>Sources</h2>$s<h2>Destinations</h2>$d", s=sources, d=dests)
