"""What the store's connection pool does with a connection besides lending it: SQLite's pragmas
when one is opened; on PostgreSQL, the server it reached (`servers`), and at checkout the
replacement of one that cannot serve: closed by the server, or silently dropped while idle.

No `pool_pre_ping`: on asyncpg it is BEGIN, a statement, ROLLBACK at every checkout, three round
trips on the hot path. A connection the server closed is known to asyncpg (`is_closed`) and
costs nothing to see. One dropped by a firewall or NAT while idle (no FIN, no RST) looks open,
and its first statement would wait for TCP to give up; so a connection that sat idle in the
pool longer than `IDLE_BEFORE_PING` is pinged before it is lent, with a short deadline. Under
load connections come back within milliseconds and are never pinged.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from engine.store.servers import ServerWatch

log = structlog.get_logger("carebridge.store")

IDLE_BEFORE_PING = 30.0
"""Seconds a PostgreSQL connection may sit in the pool before its next checkout pings it: well
under the idle timeouts of firewalls and NAT (minutes; a few at the shortest), and long enough
that a busy engine never pays for it."""
PING_TIMEOUT = 3.0
"""Seconds the ping may take before the connection is given up and a new one opened."""
_CHECKED_IN = "carebridge.checked_in"
"""The key in a connection's `info` (cleared when the pool reconnects it): when it came back."""


def sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (console, health) run beside the writer; FULL makes every commit durable
    # before intake acks the broker, so a power cut cannot lose an acknowledged message.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _checkout(dbapi_connection: Any, record: Any, _proxy: object) -> None:
    """Raise `DisconnectionError` for a connection that cannot serve: the pool then opens a new
    one in its place for this same checkout, and the caller never sees it."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is None:
        return
    if driver.is_closed():
        raise sa.exc.DisconnectionError("the server closed this connection")
    since = record.info.get(_CHECKED_IN)
    idle = 0.0 if since is None else time.monotonic() - since
    if idle <= IDLE_BEFORE_PING:
        return
    try:
        await_only(driver.execute("SELECT 1", timeout=PING_TIMEOUT))
    except asyncio.CancelledError:
        # The caller gave up (its own timeout, or its task cancelled) with the ping half way:
        # abort the connection here, so the pool (which invalidates it for any failure at
        # checkout) finds it closed, never lends it again, and does not wait up to 2 s for a
        # polite close from a peer that may be gone.
        driver.terminate()
        raise
    except Exception as exc:  # whatever the failure, this connection is done
        # Abort it now: the pool's own close would first wait for a goodbye from a dead peer.
        driver.terminate()
        log.warning("store.idle_connection_dropped", idle_s=round(idle))
        raise sa.exc.DisconnectionError(f"no answer to a ping: {type(exc).__name__}") from exc


def watch(engine: AsyncEngine) -> None:
    """Attach the listeners for this engine's dialect."""
    pool = engine.sync_engine
    if engine.dialect.name == "sqlite":
        sa_event.listen(pool, "connect", sqlite_pragmas)
        return
    sa_event.listen(pool, "connect", ServerWatch())  # a failover is said in the log
    sa_event.listen(pool, "checkin", _checked_in)
    sa_event.listen(pool, "checkout", _checkout)
