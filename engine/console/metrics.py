"""``/metrics``: the store's figures (`engine.store.console_reads.figures`: throughput, errors
and backlog per source and destination, the same the dashboard shows) in the Prometheus text
exposition format."""

from __future__ import annotations

from engine.store.console_models import Figures
from engine.store.console_reads import WINDOW


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_Family = tuple[str, str, list[tuple[str, float]]]
"""A gauge family: its name, its help text and its samples (labels, value)."""


def prometheus(f: Figures) -> str:
    """The figures in the Prometheus text exposition format (0.0.4)."""
    out: list[str] = []
    for name, help_text, samples in _source_families(f) + _destination_families(f):
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)
    return "\n".join(out) + "\n"


def _source_families(f: Figures) -> list[_Family]:
    sources = sorted(f.sources.items())
    return [
        (
            "carebridge_messages",
            "Message-log rows by source and status.",
            [
                (f'source="{_label(s)}",status="{_label(st)}"', n)
                for s, fig in sources
                for st, n in sorted(fig.messages.items())
            ],
        ),
        (
            "carebridge_source_last_received_timestamp_seconds",
            "When each source's newest message was received.",
            [
                (f'source="{_label(s)}"', fig.last_received.timestamp())
                for s, fig in sources
                if fig.last_received
            ],
        ),
    ]


def _destination_families(f: Figures) -> list[_Family]:
    dests = sorted(f.destinations.items())
    return [
        (
            "carebridge_deliveries",
            "Deliveries by destination and state.",
            [
                (f'destination="{_label(d)}",state="{_label(st)}"', n)
                for d, fig in dests
                for st, n in sorted(fig.deliveries.items())
            ],
        ),
        (
            "carebridge_backlog_oldest_age_seconds",
            "Age of each destination's oldest pending (not held) delivery; 0 when none.",
            [
                (
                    f'destination="{_label(d)}"',
                    (f.at - fig.oldest_pending).total_seconds() if fig.oldest_pending else 0.0,
                )
                for d, fig in dests
            ],
        ),
        (
            "carebridge_last_success_timestamp_seconds",
            "When each destination last accepted a delivery.",
            [
                (f'destination="{_label(d)}"', fig.last_success.timestamp())
                for d, fig in dests
                if fig.last_success
            ],
        ),
        (
            "carebridge_attempts_recent",
            f"Delivery attempts in the last {int(WINDOW.total_seconds())} s by outcome.",
            [
                (f'destination="{_label(d)}",outcome="{_label(o)}"', n)
                for d, fig in dests
                for o, n in sorted(fig.attempts_recent.items())
            ],
        ),
    ]
