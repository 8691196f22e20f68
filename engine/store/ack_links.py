"""The tokens of the links in clinician notifications: issued per action, each expiring, each
good once; and their use, which records an acknowledgement or a follow-up done.

Only a token's SHA-256 is stored, so a copy of the table acts on nothing. A use is one
transaction: the token is checked (it names this notification and action, is unused and not
expired), marked used with who and from where, and the follow-up changed; so two uses of one
token, even at the same moment, record once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase, bounded_text
from engine.store.schema import ack_links, follow_ups
from engine.store.statuses import OPEN_FOLLOW_UPS, FollowUpStatus

LinkAction = Literal["ack", "done"]
LinkOutcome = Literal["recorded", "nothing_open", "used", "expired", "unknown"]
"""recorded: the follow-up changed; nothing_open: the token was good but the follow-up had
already moved on (or there is none); used, expired, unknown: refused, nothing changed."""
_L = ack_links.c


@dataclass(frozen=True, slots=True)
class IssuedLink:
    token_sha256: str
    destination: str
    event_id: str
    action: LinkAction
    issued_at: datetime
    expires_at: datetime


async def issue_links(store: StoreBase, links: Sequence[IssuedLink]) -> None:
    """Store the hashes of tokens about to be sent."""
    rows = [{"token_sha256": k.token_sha256, "destination": k.destination,
             "event_id": k.event_id, "action": k.action, "issued_at": k.issued_at,
             "expires_at": k.expires_at} for k in links]  # fmt: skip
    if rows:
        async with store.writing() as conn:
            await conn.execute(sa.insert(ack_links), rows)
            await conn.commit()


@dataclass(frozen=True, slots=True)
class LinkUse:
    token_sha256: str
    destination: str
    event_id: str
    action: LinkAction
    by: str
    address: str
    now: datetime


async def use_link(store: StoreBase, use: LinkUse) -> LinkOutcome:
    """Check and spend one token, and record its action on the follow-up."""
    query = sa.select(_L.destination, _L.event_id, _L.action, _L.expires_at, _L.used_at).where(
        _L.token_sha256 == use.token_sha256
    )
    if store._is_postgres:
        query = query.with_for_update()
    async with store.writing() as conn:
        row = (await conn.execute(query)).first()
        outcome = _refusal(row, use)
        if outcome is None:
            spend = (
                sa.update(ack_links)
                .where(_L.token_sha256 == use.token_sha256, _L.used_at.is_(None))
                .values(used_at=use.now, used_by=_text(use.by, 120),
                        used_from=_text(use.address, 200))
            )  # fmt: skip
            spent = (await conn.execute(spend)).rowcount
            outcome = "used" if not spent else await _record(conn, use)
        if outcome in ("recorded", "nothing_open"):
            await conn.commit()
        else:
            await conn.rollback()
    return outcome


def _refusal(row: Any, use: LinkUse) -> LinkOutcome | None:
    if row is None or (row.destination, row.event_id, row.action) != (
        use.destination, use.event_id, use.action
    ):  # fmt: skip
        return "unknown"
    if row.used_at is not None:
        return "used"
    if row.expires_at <= use.now:
        return "expired"
    return None


async def _record(conn: AsyncConnection, use: LinkUse) -> LinkOutcome:
    by, address = _text(use.by, 120), _text(use.address, 200)
    if use.action == "ack":
        change = (
            sa.update(follow_ups)
            .where(follow_ups.c.event_id == use.event_id,
                   follow_ups.c.status == FollowUpStatus.OPEN)
            .values(status=FollowUpStatus.ACKNOWLEDGED, acknowledged_at=use.now,
                    acknowledged_by=by, acknowledged_from=address)
        )  # fmt: skip
    else:
        change = (
            sa.update(follow_ups)
            .where(follow_ups.c.event_id == use.event_id,
                   follow_ups.c.status.in_(OPEN_FOLLOW_UPS))
            .values(status=FollowUpStatus.DONE, done_at=use.now, done_by=by, done_from=address)
        )  # fmt: skip
    changed = (await conn.execute(change)).rowcount
    return "recorded" if changed else "nothing_open"


def _text(value: str, limit: int) -> str:
    return bounded_text(value, limit) or ""


async def prune_links(store: StoreBase, expired_before: datetime, limit: int = 10_000) -> int:
    """Delete up to `limit` links that expired before `expired_before`; return how many."""
    doomed = sa.select(_L.token_sha256).where(_L.expires_at < expired_before).limit(limit)
    async with store.writing() as conn:
        result = await conn.execute(sa.delete(ack_links).where(_L.token_sha256.in_(doomed)))
        await conn.commit()
    return int(result.rowcount)
