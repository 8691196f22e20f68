"""The console's reads of MESH: each delivery's MESH message with its acknowledgements, and the
inbox messages kept for an operator (not an acknowledgement of ours)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase
from engine.store.console_models import KeptInboxMessage, MeshAckView, MeshView
from engine.store.schema import mesh_acks, mesh_inbox, mesh_messages


async def mesh_views(conn: AsyncConnection, delivery_ids: Sequence[int]) -> dict[int, MeshView]:
    """The MESH message of each of `delivery_ids` that has one."""
    if not delivery_ids:
        return {}
    ids = list(delivery_ids)
    acks: dict[int, list[MeshAckView]] = {}
    query = sa.select(mesh_acks).where(mesh_acks.c.delivery_id.in_(ids)).order_by(mesh_acks.c.id)
    for a in await conn.execute(query):
        acks.setdefault(a.delivery_id, []).append(
            MeshAckView(a.level, a.code, bool(a.positive), a.text, a.received_at)
        )
    rows = await conn.execute(sa.select(mesh_messages).where(mesh_messages.c.delivery_id.in_(ids)))
    return {
        r.delivery_id: MeshView(
            r.recipient,
            r.recipient_ods,
            r.workflow_id,
            r.local_id,
            r.itk_message_id,
            r.message_id,
            r.uploaded_at,
            tuple(acks.get(r.delivery_id, ())),
        )
        for r in rows
    }


async def kept_inbox(store: StoreBase, limit: int = 100) -> list[KeptInboxMessage]:
    """Inbox messages kept as unreadable or unmatched, newest first."""
    query = (
        sa.select(mesh_inbox)
        .where(mesh_inbox.c.status != "matched")
        .order_by(mesh_inbox.c.received_at.desc())
        .limit(limit)
    )
    async with store.reading() as conn:
        rows = (await conn.execute(query)).all()
    return [
        KeptInboxMessage(
            r.message_id,
            r.destination,
            r.received_at,
            r.sender,
            r.workflow_id,
            r.local_id,
            r.status,
            r.reason,
            bytes(r.payload),
        )
        for r in rows
    ]
