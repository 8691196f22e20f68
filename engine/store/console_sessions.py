"""Console sessions kept in the store, and failed sign-ins counted for throttling.

A session row holds the SHA-256 of the cookie, never the cookie: a copy of the table lets no
one sign in. A session ends at `expires_at` (absolute), when idle for longer than the console's
idle timeout (since `last_seen_at`), or when revoked: by its user signing out or by an admin
(audited in the same transaction).

Failed sign-ins are counted per key (``user:<name>``, ``address:<ip>``); the caller's policy
turns a count into a lock-out time. A key forgets its failures after a quiet spell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.audit import Actor, AuditEntry, write_audit
from engine.store.base import StoreBase
from engine.store.schema import console_sessions, sign_in_failures

_S = console_sessions.c


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    user_name: str
    address: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


_COLUMNS = (_S.id, _S.user_name, _S.address, _S.created_at, _S.last_seen_at, _S.expires_at,
            _S.revoked_at)  # fmt: skip


def _row(r: Any) -> SessionRow:
    return SessionRow(r.id, r.user_name, r.address, r.created_at, r.last_seen_at, r.expires_at,
                      r.revoked_at)  # fmt: skip


async def open_session(store: StoreBase, key_sha256: str, user_name: str, address: str | None,
                       now: datetime, expires_at: datetime) -> None:  # fmt: skip
    row = {"key_sha256": key_sha256, "user_name": user_name, "address": (address or "")[:64],
           "created_at": now, "last_seen_at": now, "expires_at": expires_at}  # fmt: skip
    async with store.writing() as conn:
        await conn.execute(sa.insert(console_sessions), [row])
        await conn.commit()


async def find_session(store: StoreBase, key_sha256: str) -> SessionRow | None:
    query = sa.select(*_COLUMNS).where(_S.key_sha256 == key_sha256)
    async with store.reading() as conn:
        found = (await conn.execute(query)).first()
    return None if found is None else _row(found)


async def touch_session(store: StoreBase, session_id: int, now: datetime) -> None:
    """Note the session in use now (the idle timeout counts from here)."""
    change = sa.update(console_sessions).where(_S.id == session_id, _S.revoked_at.is_(None))
    async with store.writing() as conn:
        await conn.execute(change.values(last_seen_at=now))
        await conn.commit()


async def _revoke(conn: AsyncConnection, where: sa.ColumnElement[bool], by: str,
                  now: datetime) -> list[SessionRow]:  # fmt: skip
    change = (
        sa.update(console_sessions)
        .where(where, _S.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by)
        .returning(*_COLUMNS)
    )
    return [_row(r) for r in await conn.execute(change)]


async def end_session(store: StoreBase, session_id: int, now: datetime, by: str) -> bool:
    """Sign-out: the session is revoked by its own user."""
    async with store.writing() as conn:
        ended = await _revoke(conn, _S.id == session_id, by, now)
        await conn.commit()
    return bool(ended)


async def revoke_sessions(store: StoreBase, actor: Actor, now: datetime, *,
                          session_id: int | None = None,
                          user_name: str | None = None) -> list[SessionRow]:  # fmt: skip
    """An admin ends one session, or every session of a user; audited with the change."""
    if (session_id is None) == (user_name is None):
        raise ValueError("name one session or one user")
    where = _S.id == session_id if session_id is not None else _S.user_name == user_name
    async with store.writing() as conn:
        ended = await _revoke(conn, where, actor.name, now)
        entries = [AuditEntry("revoke_session", detail=f"session {s.id} of {s.user_name}")
                   for s in ended]  # fmt: skip
        await write_audit(conn, actor, entries, now)
        await conn.commit()
    return ended


async def live_sessions(store: StoreBase, now: datetime, idle: timedelta,
                        limit: int = 500) -> list[SessionRow]:  # fmt: skip
    """Sessions neither revoked, expired nor idle too long, newest first."""
    query = (
        sa.select(*_COLUMNS)
        .where(_S.revoked_at.is_(None), _S.expires_at > now, _S.last_seen_at > now - idle)
        .order_by(_S.id.desc())
        .limit(limit)
    )
    async with store.reading() as conn:
        return [_row(r) for r in await conn.execute(query)]


# ---- failed sign-ins -------------------------------------------------------------------------

_F = sign_in_failures.c
LockPolicy = Callable[[str, int], timedelta | None]
"""(key, failures in a row) -> how long the key is locked out, or None."""


async def locked_until(store: StoreBase, keys: Sequence[str], now: datetime) -> datetime | None:
    """The latest lock-out of any of `keys` still running at `now`, or None."""
    query = sa.select(sa.func.max(_F.locked_until)).where(_F.key.in_(keys), _F.locked_until > now)
    async with store.reading() as conn:
        found = (await conn.execute(query)).scalar()
    return found if isinstance(found, datetime) else None


async def record_failure(
    store: StoreBase, keys: Sequence[str], now: datetime, forget_after: timedelta,
    policy: LockPolicy,
) -> datetime | None:  # fmt: skip
    """Count one more failure for each key (a key quiet since `forget_after` starts again at
    one); return the latest lock-out this sets, or None."""
    latest: datetime | None = None
    async with store.writing() as conn:
        for key in keys:
            query = sa.select(_F.failures, _F.last_failure_at).where(_F.key == key)
            if store._is_postgres:
                query = query.with_for_update()
            found = (await conn.execute(query)).first()
            fresh = found is None or found.last_failure_at <= now - forget_after
            failures = 1 if fresh or found is None else int(found.failures) + 1
            lock = policy(key, failures)
            until = now + lock if lock is not None else None
            values = {"failures": failures, "last_failure_at": now, "locked_until": until}
            if found is None:
                await conn.execute(_insert_or_update(store, key, values))
            else:
                await conn.execute(sa.update(sign_in_failures).where(_F.key == key).values(values))
            if until is not None and (latest is None or until > latest):
                latest = until
        await conn.commit()
    return latest


def _insert_or_update(store: StoreBase, key: str, values: dict[str, object]) -> sa.Executable:
    """An insert that, if a concurrent failure inserted the key first, counts on from it."""
    if store._is_postgres:
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(sign_in_failures).values(key=key, **values)
    return statement.on_conflict_do_update(
        index_elements=[_F.key],
        set_={"failures": _F.failures + 1, "last_failure_at": values["last_failure_at"],
              "locked_until": values["locked_until"]},
    )  # fmt: skip


async def clear_failures(store: StoreBase, key: str) -> None:
    """A successful sign-in forgets the user's failures."""
    async with store.writing() as conn:
        await conn.execute(sa.delete(sign_in_failures).where(_F.key == key))
        await conn.commit()


async def prune_sign_ins(
    store: StoreBase, ended_before: datetime, quiet_since: datetime, limit: int = 10_000
) -> int:
    """Retention of the sign-in tables: sessions that ended (their absolute end passed, or
    revoked) before `ended_before`, and failure counts untouched since `quiet_since` that lock
    nobody out any more. Returns how many rows went."""
    sessions = sa.select(_S.id).where(
        sa.or_(_S.expires_at < ended_before, _S.revoked_at < ended_before)
    )
    failures = sa.select(_F.key).where(
        _F.last_failure_at < quiet_since,
        sa.or_(_F.locked_until.is_(None), _F.locked_until < quiet_since),
    )
    async with store.writing() as conn:
        gone = await conn.execute(
            sa.delete(console_sessions).where(_S.id.in_(sessions.limit(limit).scalar_subquery()))
        )
        forgotten = await conn.execute(
            sa.delete(sign_in_failures).where(_F.key.in_(failures.limit(limit).scalar_subquery()))
        )
        await conn.commit()
    return int(gone.rowcount) + int(forgotten.rowcount)
