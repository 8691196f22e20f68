"""The console's audit log: who saw or changed what, when, about which patient, and why.

Rows are only ever inserted (the table refuses UPDATE and DELETE by trigger). An action's audit
row is written in the same transaction as the change it records, so neither exists alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.console.auth import Principal
from engine.store import Store
from engine.store.schema import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    """view_message, search_patient, replay, replay_bulk, resolve, hold, release, view_audit"""
    message_id: int | None = None
    delivery_id: int | None = None
    patient_key: str | None = None
    reason: str | None = None
    detail: str | None = None


def _row(principal: Principal, entry: AuditEntry, at: datetime) -> dict[str, Any]:
    return {
        "at": at,
        "actor": principal.name,
        "role": principal.role,
        "action": entry.action,
        "message_id": entry.message_id,
        "delivery_id": entry.delivery_id,
        "patient_key": entry.patient_key,
        "reason": (entry.reason or "").replace("\x00", "")[:2000] or None,
        "detail": (entry.detail or "").replace("\x00", "")[:2000] or None,
    }


async def write(
    conn: AsyncConnection,
    principal: Principal,
    entries: list[AuditEntry],
    at: datetime | None = None,
) -> None:
    """Append entries inside the caller's transaction."""
    if entries:
        now = at or datetime.now(UTC)
        await conn.execute(sa.insert(audit_log), [_row(principal, e, now) for e in entries])


async def record(store: Store, principal: Principal, entry: AuditEntry) -> None:
    """Append one entry in a transaction of its own (for views, which change nothing else)."""
    async with store.writing() as conn:
        await write(conn, principal, [entry])
        await conn.commit()
