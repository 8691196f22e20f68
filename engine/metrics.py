"""The engine's own Prometheus metrics, updated as it works (prometheus-client), served on
``/metrics`` beside the figures the store derives (`engine.console.metrics`).

- ``carebridge_intake_messages_total{source,status}``: messages committed (accepted, rejected,
  duplicate);
- ``carebridge_intake_to_delivery_seconds{destination}``: from the intake commit that created
  a delivery to its delivered answer;
- ``carebridge_discharge_to_notification_seconds{destination}``: the same for a discharge (or
  its withdrawal) delivered to a clinician notification destination: the engine's part of the
  time a clinician waits;
- ``carebridge_delivery_attempts_total{destination,outcome}``: attempts by outcome (delivered,
  transient, permanent);
- ``carebridge_deliveries_in_flight{destination}``: deliveries being sent now;
- ``carebridge_intake_waiting_messages``: received from RabbitMQ, not yet taken by intake;
- the process (``process_*``: CPU, memory, open files) and Python (``python_*``) collectors.

Module-level, as prometheus-client intends: one set per process. Labels are configuration
names and fixed words only, never patient data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
                    3600, 21600, 86400)  # fmt: skip

INTAKE = Counter(
    "carebridge_intake_messages", "Messages committed by intake, by source and status.",
    ["source", "status"],
)  # fmt: skip
INTAKE_TO_DELIVERY = Histogram(
    "carebridge_intake_to_delivery_seconds",
    "From the intake commit that created a delivery to its delivered answer.",
    ["destination"], buckets=_LATENCY_BUCKETS,
)  # fmt: skip
DISCHARGE_TO_NOTIFICATION = Histogram(
    "carebridge_discharge_to_notification_seconds",
    "From the intake commit of a discharge (or its withdrawal) to the clinician notification "
    "delivered.",
    ["destination"], buckets=_LATENCY_BUCKETS,
)  # fmt: skip
ATTEMPTS = Counter(
    "carebridge_delivery_attempts", "Delivery attempts by destination and outcome.",
    ["destination", "outcome"],
)  # fmt: skip
IN_FLIGHT = Gauge(
    "carebridge_deliveries_in_flight", "Deliveries being sent now, by destination.",
    ["destination"],
)  # fmt: skip

INTAKE_WAITING = Gauge(
    "carebridge_intake_waiting_messages",
    "Messages received from RabbitMQ and not yet taken by intake (the engine's own queue; the "
    "broker's queues hold the rest, unacked).",
)

NOTIFIED_KINDS = frozenset({"discharge", "cancel_discharge"})
"""Kinds every notification destination sends (a transfer is notified only across sites)."""


def count_intake(counts: Mapping[tuple[str, str], int]) -> None:
    """Count a batch's messages: how many of each (source, status)."""
    for (source, status), n in counts.items():
        INTAKE.labels(source, status).inc(n)


def count_attempts(destination: str, outcomes: Iterable[str]) -> None:
    for outcome in outcomes:
        ATTEMPTS.labels(destination, outcome).inc()


def observe_delivered(destination: str, kind: str, seconds: float, *, notification: bool) -> None:
    INTAKE_TO_DELIVERY.labels(destination).observe(seconds)
    if notification and kind in NOTIFIED_KINDS:
        DISCHARGE_TO_NOTIFICATION.labels(destination).observe(seconds)


def exposition() -> bytes:
    """Every metric of this process in the Prometheus text format (0.0.4)."""
    return generate_latest(REGISTRY)
