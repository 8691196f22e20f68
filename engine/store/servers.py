"""Which PostgreSQL server the store's connections reach, said in the log when it changes.

With several hosts in `store.url` (`?host=A:5432&host=B:5432&target_session_attrs=read-write`)
asyncpg connects to the first that accepts writes. After a failover (the primary lost, a
standby promoted) the pool's new connections reach another server: the log says so once,
`store.server_changed` with the previous and the new address, so an operator reading the log
sees the failover the engine followed, beside the `store_unavailable` waits that preceded it.
"""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger("carebridge.store")


class ServerWatch:
    """A pool "connect" listener: asks each new connection which server it reached."""

    def __init__(self) -> None:
        self.server: str | None = None

    def __call__(self, dbapi_connection: Any, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT host(inet_server_addr()), inet_server_port()")
            host, port = cursor.fetchone()
        finally:
            cursor.close()
        server = f"{host or 'local'}:{port or ''}"
        if server == self.server:
            return
        if self.server is None:
            log.info("store.connected", server=server)
        else:
            log.warning("store.server_changed", previous=self.server, server=server)
        self.server = server
