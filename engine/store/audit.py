"""The audit log's writes: who saw or changed what, when, about which patient, and why.

Rows are only ever inserted: the table refuses UPDATE and DELETE by trigger (and TRUNCATE on
PostgreSQL), and on PostgreSQL the engine can run as a role that may only INSERT and SELECT
it and owns nothing, so its own connection cannot lift those triggers (`roles`). An operator
action's audit rows are written in the same transaction as the change they record (see
`operator`), so neither exists alone; a view's row is written in a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase, utc_now
from engine.store.schema import audit_log


class Actor(Protocol):
    """Who acts: the console's signed-in principal, as far as the audit log needs it."""

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    """view_message, search_patient, list_messages, list_dead_letters, list_mesh_inbox,
    view_audit (reads: engine.console.audited), view_journey, view_follow_ups,
    export_follow_ups, replay, replay_bulk, resolve, hold, release, remap, revoke_session"""
    message_id: int | None = None
    delivery_id: int | None = None
    patient_key: str | None = None
    reason: str | None = None
    detail: str | None = None


def _bounded(text: str | None) -> str | None:
    return (text or "").replace("\x00", "")[:2000] or None


def _row(actor: Actor, entry: AuditEntry, at: datetime) -> dict[str, Any]:
    return {
        "at": at,
        "actor": actor.name,
        "role": actor.role,
        "action": entry.action,
        "message_id": entry.message_id,
        "delivery_id": entry.delivery_id,
        "patient_key": entry.patient_key,
        "reason": _bounded(entry.reason),
        "detail": _bounded(entry.detail),
    }


async def write_audit(
    conn: AsyncConnection,
    actor: Actor,
    entries: Sequence[AuditEntry],
    at: datetime | None = None,
) -> None:
    """Append entries inside the caller's (the store's) transaction."""
    if entries:
        now = at or utc_now()
        await conn.execute(sa.insert(audit_log), [_row(actor, e, now) for e in entries])


async def record(store: StoreBase, actor: Actor, entry: AuditEntry) -> None:
    """Append one entry in a transaction of its own (for views, which change nothing else)."""
    async with store.writing() as conn:
        await write_audit(conn, actor, [entry])
        await conn.commit()
