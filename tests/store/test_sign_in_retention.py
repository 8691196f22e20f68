"""Retention of the console's sign-in tables, on SQLite and PostgreSQL: sessions go a day after
they ended (expired or revoked), failure counts once quiet and locking nobody; live ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from engine.store import Store
from engine.store.console_sessions import prune_sign_ins
from engine.store.schema import console_sessions, sign_in_failures

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def test_ended_sessions_and_quiet_failures_go_live_ones_stay(store: Store) -> None:
    def session(
        key: str, expires: timedelta, revoked: timedelta | None = None
    ) -> dict[str, object]:
        return {"key_sha256": key, "user_name": "olive", "address": "127.0.0.1",
                "created_at": NOW - timedelta(days=9), "last_seen_at": NOW - timedelta(days=3),
                "expires_at": NOW + expires,
                "revoked_at": NOW + revoked if revoked is not None else None}  # fmt: skip

    def failure(key: str, last: timedelta, locked: timedelta | None) -> dict[str, object]:
        return {"key": key, "failures": 5, "last_failure_at": NOW + last,
                "locked_until": NOW + locked if locked is not None else None}  # fmt: skip

    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(console_sessions), [
            session("expired-long-ago", timedelta(days=-2)),
            session("expired-just-now", timedelta(hours=-1)),
            session("revoked-long-ago", timedelta(days=5), timedelta(days=-3)),
            session("live", timedelta(hours=6)),
        ])  # fmt: skip
        await conn.execute(sa.insert(sign_in_failures), [
            failure("user:quiet", timedelta(days=-40), None),
            failure("user:locked-long", timedelta(days=-40), timedelta(days=400)),
            failure("user:recent", timedelta(days=-1), None),
        ])  # fmt: skip
    gone = await prune_sign_ins(store, NOW - timedelta(days=1), NOW - timedelta(days=30))
    async with store.engine.connect() as conn:
        sessions = {r[0] for r in await conn.execute(sa.select(console_sessions.c.key_sha256))}
        failures = {r[0] for r in await conn.execute(sa.select(sign_in_failures.c.key))}
    assert gone == 3
    assert sessions == {"expired-just-now", "live"}
    assert failures == {"user:locked-long", "user:recent"}


async def test_the_retention_pass_prunes_the_sign_in_tables_too(store: Store) -> None:
    from engine.config import RetentionConfig
    from engine.retention import prune_once

    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(sign_in_failures), [{
            "key": "user:quiet", "failures": 1, "last_failure_at": NOW - timedelta(days=400),
            "locked_until": None}])  # fmt: skip
    assert await prune_once(store, RetentionConfig()) == 0  # no messages to prune
    async with store.engine.connect() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(sign_in_failures))
        ).scalar() == 0


async def test_a_long_retention_pass_leaves_the_writer_to_intake_and_delivery(
    store: Store,
) -> None:
    """Batch after batch, the pass waits four times as long as each batch took, so a backlog
    of old messages cannot hold the store's one writer for as long as the pruning lasts."""
    from engine.config import RetentionConfig
    from engine.retention import WRITE_SHARE, prune_once
    from engine.store import AcceptedEvent, IntakeRecord

    old = NOW - timedelta(days=400)
    await store.record_intake([
        IntakeRecord(source="mh-trust", payload=b"MSH|%d" % i, received_at=old, format="hl7v2",
                     message_key=f"k{i}", accepted=AcceptedEvent(
                         event_id=f"ev-{i}", kind="discharge", care_setting="mental_health",
                         patient_key=f"p{i}", occurred_at=old, body="{}", destinations=()))
        for i in range(7)
    ])  # fmt: skip
    pauses: list[float] = []
    writes_between: list[int] = []

    async def sleep(seconds: float) -> None:  # another writer takes its turn meanwhile
        pauses.append(seconds)
        async with store.writing() as conn:
            await conn.commit()
        writes_between.append(len(pauses))

    assert await prune_once(store, RetentionConfig(batch=3), sleep=sleep) == 7
    assert len(pauses) == 2  # after the two full batches, not after the last one
    assert all(p > 0 for p in pauses)
    assert writes_between == [1, 2]
    assert WRITE_SHARE <= 0.25
