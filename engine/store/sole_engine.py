"""One running engine per SQLite file, held by an exclusive lock for the engine's life.

An engine on SQLite frees every delivery lease it finds at start: they can only be a dead
predecessor's (`Outbox.release_leases_at_start`). That is true only while no other engine uses
the file. Two engines on one file (two containers on one volume, `carebridge run` started
twice) would each free the other's live leases and send the same discharge twice, so the second
engine refuses to start instead.

The lock is `flock(2)` on ``<database>.engine-lock`` beside the database, not on the database
file itself: SQLite's own locks are POSIX record locks on the database, and a lock of another
kind on a separate file can never interfere with them. The kernel drops the lock when the
process dies, SIGKILL included, so a restart after a crash is never refused. The file keeps the
holder's pid for the refusal message; it is not removed at exit (removing it would race a
starting engine). Only `carebridge run` takes it: the command-line tools that read the store
(export, migrate, check) may run beside an engine.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import sqlalchemy as sa


class FileInUse(Exception):
    """Another engine holds the SQLite file."""


def sqlite_file(url: sa.URL) -> str | None:
    """The real path of the SQLite database file `url` names (SQLite's URI form, `file:...`
    with `?uri=true`, included); None for PostgreSQL and for an in-memory database. A symlink
    or a relative path to the same file gives the same path."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # SQLite's URI form (`?uri=true`)
        database = database.removeprefix("file:").partition("?")[0]
        if not database or database == ":memory:" or url.query.get("mode") == "memory":
            return None
    return os.path.realpath(database)


class SoleEngine:
    """The lock, held until `release` (or the process's end)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def take(cls, store_url: str) -> SoleEngine | None:
        """Hold the lock of the SQLite database at `store_url`; None for PostgreSQL and for an
        in-memory database. Raises `FileInUse` if another engine holds it."""
        database = sqlite_file(sa.make_url(store_url))
        if database is None:
            return None
        path = Path(database + ".engine-lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FileInUse(
                f"another engine (pid {holder}) is running on the SQLite store "
                f"{database}: one SQLite file serves one engine; "
                "use PostgreSQL for several"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
