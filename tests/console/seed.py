"""A small message log for console tests: accepted, rejected, delivered and dead-lettered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from engine.store import (
    AcceptedEvent,
    AttemptRecord,
    ClaimedDelivery,
    DeadLettered,
    Delivered,
    IntakeRecord,
    Store,
)

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
NHS = "9434765919"
LEASE = timedelta(seconds=60)


def hl7(key: str, name: str = "SMITH^JANE") -> bytes:
    return (
        f"MSH|^~\\&|PAS|RXX|CB|RXX|20260101090000||ADT^A03|{key}|P|2.4\r"
        f"PID|1||{NHS}^^^NHS^NH||{name}||19800101|F\r"
    ).encode()


def accepted(
    key: str,
    patient: str = f"nhs:{NHS}",
    *,
    source: str = "mh-trust",
    kind: str = "discharge",
    destinations: tuple[str, ...] = ("gp", "team"),
    at: datetime = T0,
    payload: bytes | None = None,
) -> IntakeRecord:
    body = {
        "event_id": f"ev-{key}",
        "kind": kind,
        "patient": {"name": {"family": "SMITH", "given": ["JANE"]}, "nhs_number": NHS},
    }
    return IntakeRecord(
        source=source,
        payload=payload or hl7(key),
        received_at=at,
        format="hl7v2",
        message_key=key,
        accepted=AcceptedEvent(
            event_id=f"ev-{key}",
            kind=kind,
            care_setting="mental_health",
            patient_key=patient,
            occurred_at=at,
            body=json.dumps(body),
            destinations=tuple((d, False) for d in destinations),
        ),
    )


def rejected(key: str, *, source: str = "mh-trust", at: datetime = T0) -> IntakeRecord:
    return IntakeRecord(
        source=source,
        payload=hl7(key),
        received_at=at,
        format="hl7v2",
        message_key=key,
        reason="PID-3: no patient identifier",
        error_location="PID-3",
        error_code="101",
    )


async def deliver_all(
    store: Store, *, dead: frozenset[str] = frozenset(), now: datetime | None = None
) -> None:
    """Claim everything due and finish it: delivered, or dead-lettered for `dead` destinations."""
    now = now or datetime.now(UTC)
    while claimed := await store.claim_due(
        ["gp", "team"], limit=1000, lease=LEASE, owner="t", now=now
    ):
        await _finish(store, claimed, dead, now)


async def _finish(
    store: Store, claimed: list[ClaimedDelivery], dead: frozenset[str], now: datetime
) -> None:
    for c in claimed:
        if c.destination in dead:
            await store.finish_delivery(
                c,
                [AttemptRecord(now, 5, "permanent", 422, "refused: bad PID")],
                DeadLettered("refused by the destination: HTTP 422"),
            )
        else:
            await store.finish_delivery(
                c, [AttemptRecord(now, 5, "delivered", 200, "ok")], Delivered(now)
            )
