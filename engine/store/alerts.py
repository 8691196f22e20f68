"""What the alert watches read, and what is raised: the `alert_state` table.

Every alert the engine raises has one row here (keyed by the alert's key, ``<condition>.<subject>``)
from the moment a replica claims the right to post it until its "cleared" has been taken. A
claim is a unique insert (a raise) or a conditional update (a clear) with a token, taken before
the POST and settled after it, so with several replicas only one posts a given raise or clear. A
claim left by a replica that died mid-POST is taken over once older than the lease the caller
gives; the repeat carries the same Idempotency-Key.

    (none) ─claim_raise─► raising ─confirm_raise─► raised ─claim_clear─► clearing ─confirm_clear─►
              drop_raise ◄─┘ (POST failed)           release_clear ◄─┘ (POST failed)     (none)

A follow-up alert is raised once and never cleared: once posted, its follow-up row records it
(`alerted_overdue` / `alerted_unacknowledged`) and its claim row goes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.base import StoreBase
from engine.store.schema import alert_state, deliveries, follow_ups, messages
from engine.store.statuses import OPEN_FOLLOW_UPS, DeliveryStatus, FollowUpStatus

Facts = Mapping[str, str | int]
Phase = Literal["raising", "raised", "clearing"]


@dataclass(frozen=True, slots=True)
class Backlog:
    oldest: datetime
    """Queue time of the oldest pending (not held) delivery."""
    pending: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    destination: str
    event_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Observed:
    """What the operator alerts' conditions are decided on."""

    backlogs: Mapping[str, Backlog] = field(default_factory=dict)
    dead_letters: Mapping[int, DeadLetter] = field(default_factory=dict)
    """Unresolved dead letters by delivery id."""
    last_received: Mapping[str, datetime | None] = field(default_factory=dict)
    """For each watched source: when its newest message was received (None: never)."""


@dataclass(frozen=True, slots=True)
class StandingAlert:
    """A row of `alert_state`: an alert raised, or being raised or cleared by a claim."""

    key: str
    condition: str
    episode: str
    facts: Facts
    phase: Phase
    claimed_at: datetime | None


@dataclass(frozen=True, slots=True)
class FollowUpDue:
    """A follow-up overdue or unacknowledged too long that is not yet alerted."""

    event_id: str
    standard: str
    due_at: datetime
    created_at: datetime
    status: str
    alerted_overdue: bool
    alerted_unacknowledged: bool


def _utc(value: object) -> datetime:
    """Aggregates can bypass the column type on SQLite: naive text or datetimes come back."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _backlogs(conn: AsyncConnection) -> dict[str, Backlog]:
    d = deliveries.c
    rows = await conn.execute(
        sa.select(d.destination, sa.func.min(d.created_at), sa.func.count())
        .where(d.status == DeliveryStatus.PENDING, d.held_at.is_(None))
        .group_by(d.destination)
    )
    return {dest: Backlog(_utc(oldest), int(n)) for dest, oldest, n in rows if oldest is not None}


async def _dead_letters(conn: AsyncConnection) -> dict[int, DeadLetter]:
    d = deliveries.c
    rows = await conn.execute(
        sa.select(d.id, d.destination, d.event_id, d.attempts).where(
            d.status == DeliveryStatus.DEAD, d.resolved_at.is_(None)
        )
    )
    return {int(r.id): DeadLetter(r.destination, r.event_id, int(r.attempts)) for r in rows}


async def _last_received(conn: AsyncConnection, source: str) -> datetime | None:
    newest = (
        sa.select(messages.c.received_at)
        .where(messages.c.source == source)
        .order_by(messages.c.id.desc())
        .limit(1)
    )
    received = (await conn.execute(newest)).scalar()
    return None if received is None else _utc(received)


def _insert_claim(conn: AsyncConnection) -> sa.Insert:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert: sa.Insert = dialect.insert(alert_state).on_conflict_do_nothing(index_elements=["key"])
    return insert


async def _claim_raise(
    conn: AsyncConnection, row: dict[str, object], now: datetime, stale_before: datetime
) -> bool:
    """Insert the claim, or take over a raise claimed before `stale_before` and never settled."""
    if (await conn.execute(_insert_claim(conn).values(**row))).rowcount:
        return True
    taken = await conn.execute(
        sa.update(alert_state)
        .where(
            alert_state.c.key == row["key"],
            alert_state.c.phase == "raising",
            alert_state.c.claimed_at < stale_before,
        )
        .values(claim=row["claim"], claimed_at=now)
    )
    return bool(taken.rowcount)


class AlertStates(StoreBase):
    """The reads the alert watches decide on, and the claims that make each alert go once."""

    async def observe_alerts(
        self, *, backlogs: bool, dead_letters: bool, sources: Sequence[str]
    ) -> Observed:
        """Grouped pending deliveries, unresolved dead letters (ids only) and each watched
        source's newest message (one index probe each); only what is asked for."""
        async with self.reading() as conn:
            return Observed(
                await _backlogs(conn) if backlogs else {},
                await _dead_letters(conn) if dead_letters else {},
                {source: await _last_received(conn, source) for source in sources},
            )

    async def standing_alerts(self, conditions: Sequence[str]) -> list[StandingAlert]:
        """The rows of `alert_state` for these conditions, by key."""
        query = (
            sa.select(alert_state)
            .where(alert_state.c.condition.in_(conditions))
            .order_by(alert_state.c.key)
        )
        async with self.reading() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StandingAlert(
                r.key, r.condition, r.episode, orjson.loads(r.facts), r.phase, r.claimed_at
            )
            for r in rows
        ]

    async def claim_raise(
        self,
        key: str,
        condition: str,
        episode: str,
        facts: Facts,
        now: datetime,
        stale_before: datetime,
    ) -> str | None:
        """The token to post this raise with, or None when another claim has it."""
        token = uuid.uuid4().hex
        row = _claim_row(key, condition, episode, facts, token, now)
        async with self.writing() as conn:
            claimed = await _claim_raise(conn, row, now, stale_before)
            await conn.commit()
        return token if claimed else None

    async def confirm_raise(self, key: str, token: str, now: datetime) -> None:
        """The webhook took the raise: the alert stands until its clear is claimed."""
        await self._settle(
            sa.update(alert_state)
            .where(alert_state.c.key == key, alert_state.c.claim == token)
            .values(phase="raised", claim=None, claimed_at=None, raised_at=now)
        )

    async def drop_raise(self, key: str, token: str) -> None:
        """The raise was not posted: forget the claim, so the next check raises it afresh."""
        await self._settle(
            sa.delete(alert_state).where(
                alert_state.c.key == key,
                alert_state.c.claim == token,
                alert_state.c.phase == "raising",
            )
        )

    async def claim_clear(
        self, key: str, episode: str, now: datetime, stale_before: datetime
    ) -> str | None:
        """The token to post this alert's "cleared" with, or None when another claim has it
        (or the row is gone or now another episode)."""
        token = uuid.uuid4().hex
        claim = (
            sa.update(alert_state)
            .where(
                alert_state.c.key == key,
                alert_state.c.episode == episode,
                sa.or_(alert_state.c.claim.is_(None), alert_state.c.claimed_at < stale_before),
            )
            .values(phase="clearing", claim=token, claimed_at=now)
        )
        async with self.writing() as conn:
            claimed = (await conn.execute(claim)).rowcount
            await conn.commit()
        return token if claimed else None

    async def confirm_clear(self, key: str, token: str) -> None:
        """The webhook took the "cleared": the alert is over."""
        await self._settle(
            sa.delete(alert_state).where(alert_state.c.key == key, alert_state.c.claim == token)
        )

    async def release_clear(self, key: str, token: str) -> None:
        """The "cleared" was not posted: the alert stands again; the next check retries it."""
        await self._settle(
            sa.update(alert_state)
            .where(alert_state.c.key == key, alert_state.c.claim == token)
            .values(phase="raised", claim=None, claimed_at=None)
        )

    async def _settle(self, change: sa.Update | sa.Delete) -> None:
        async with self.writing() as conn:
            await conn.execute(change)
            await conn.commit()

    # ---- follow-up alerts -------------------------------------------------------------------

    async def follow_ups_to_alert(
        self, now: datetime, unacknowledged_before: datetime
    ) -> list[FollowUpDue]:
        """Follow-ups overdue, or unacknowledged since before the given time, not yet alerted."""
        c = follow_ups.c
        query = sa.select(follow_ups).where(
            c.status.in_(OPEN_FOLLOW_UPS),
            sa.or_(
                sa.and_(c.due_at <= now, c.alerted_overdue.is_(False)),
                sa.and_(
                    c.status == FollowUpStatus.OPEN,
                    c.created_at <= unacknowledged_before,
                    c.alerted_unacknowledged.is_(False),
                ),
            ),
        )
        async with self.reading() as conn:
            rows = (await conn.execute(query)).all()
        return [
            FollowUpDue(
                r.event_id,
                r.standard,
                r.due_at,
                r.created_at,
                r.status,
                r.alerted_overdue,
                r.alerted_unacknowledged,
            )
            for r in rows
        ]

    async def claim_follow_up_alert(
        self,
        key: str,
        condition: str,
        episode: str,
        facts: Facts,
        event_id: str,
        now: datetime,
        stale_before: datetime,
    ) -> str | None:
        """Like `claim_raise`, and None as well when the follow-up was alerted meanwhile."""
        token = uuid.uuid4().hex
        row = _claim_row(key, condition, episode, facts, token, now)
        async with self.writing() as conn:
            claimed = await _claim_raise(conn, row, now, stale_before)
            # Read after the claim: a replica that posted it and settled has committed by now.
            alerted = (
                await conn.execute(
                    sa.select(_alerted_column(condition)).where(follow_ups.c.event_id == event_id)
                )
            ).scalar()
            if not claimed or alerted is not False:
                await conn.rollback()
                return None
            await conn.commit()
        return token

    async def confirm_follow_up_alert(
        self, key: str, condition: str, event_id: str, token: str
    ) -> None:
        """The alert went (or there is no webhook): the follow-up records it; the claim goes."""
        async with self.writing() as conn:
            await conn.execute(
                sa.update(follow_ups)
                .where(follow_ups.c.event_id == event_id)
                .values({_alerted_column(condition).name: True})
            )
            await conn.execute(
                sa.delete(alert_state).where(alert_state.c.key == key, alert_state.c.claim == token)
            )
            await conn.commit()


def _alerted_column(condition: str) -> sa.Column[bool]:
    """The follow-up's record of this alert: overdue, or else unacknowledged."""
    if condition == "follow_up_overdue":
        return follow_ups.c.alerted_overdue
    return follow_ups.c.alerted_unacknowledged


def _claim_row(
    key: str, condition: str, episode: str, facts: Facts, token: str, now: datetime
) -> dict[str, object]:
    return {
        "key": key,
        "condition": condition,
        "episode": episode,
        "facts": orjson.dumps(dict(facts)).decode(),
        "phase": "raising",
        "claim": token,
        "claimed_at": now,
        "raised_at": None,
    }
