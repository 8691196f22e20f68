"""Retention: prune the settled part of the message log by age, in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog

from engine.config import RetentionConfig
from engine.store import Store, ack_links, console_sessions

log = structlog.get_logger("carebridge.retention")


WRITE_SHARE = 0.2
"""Most of the store's write time a pass with more to prune may take. After each full batch the
pass waits four times as long as the batch took: a store with a large backlog of old messages
(a first start after an upgrade, a retention shortened) would otherwise hold SQLite's one
writer batch after batch, and intake and delivery, which need it for every message, would wait
behind the pruning for as long as it lasts (seen: 17 deliveries in a minute)."""


def _pause(batch_seconds: float) -> float:
    return batch_seconds * (1 - WRITE_SHARE) / WRITE_SHARE


async def prune_once(
    store: Store,
    config: RetentionConfig,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Prune everything that is due now, in batches paced to `WRITE_SHARE`; return how many
    messages went.

    Notification links that expired a day ago go too, whatever the message log's retention
    (an expired link is refused all the same; its row only says it was once sent), and so do
    console sessions a day after they ended and sign-in failure counts quiet for 30 days (each
    revocation and sign-in is in the audit log and the logs)."""
    now = datetime.now(UTC)
    await ack_links.prune_links(store, now - timedelta(days=1))
    await console_sessions.prune_sign_ins(store, now - timedelta(days=1), now - timedelta(days=30))
    if config.message_log is None:
        return 0
    cutoff = datetime.now(UTC) - config.message_log
    total = 0
    while True:
        started = time.monotonic()
        pruned = await store.prune(cutoff, limit=config.batch)
        total += pruned
        if pruned < config.batch:
            break
        await sleep(_pause(time.monotonic() - started))
    while True:  # matched MESH inbox messages go with the log; the rest stay
        started = time.monotonic()
        if await store.prune_mesh_inbox(cutoff, config.batch) < config.batch:
            return total
        await sleep(_pause(time.monotonic() - started))


async def run(store: Store, config: RetentionConfig, stopping: asyncio.Event) -> None:
    """Prune at start and then every `interval` until `stopping` is set."""
    while not stopping.is_set():
        try:
            if pruned := await prune_once(store, config):
                log.info("retention.pruned", messages=pruned)
        except Exception as exc:  # noqa: BLE001 - retention must never stop the engine
            log.error("retention.failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), config.interval.total_seconds())
