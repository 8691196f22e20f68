"""The store's own errors, translated from SQLAlchemy's and the driver's at the store boundary.

`StoreUnavailable`: the store could not be reached, or the work was interrupted (connection
refused or dropped, a server starting up, a locked database, a full disk: SQLite's SQLITE_FULL,
"database or disk is full", arrives as an OperationalError): worth waiting for, never a reason
to set a message aside. `StoreFull`, one of them, says the disk is nearly full before SQLite
has to. `StoreRefused`: the store refused what was written (a constraint, a value it cannot
hold): retrying will not help, the content must be isolated.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import sqlalchemy as sa


class StoreError(Exception):
    """A store operation failed. The message is the driver error's type, never row data."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause_name = type(cause).__name__
        """The type of the error the store met (e.g. OperationalError), for logs."""


class StoreUnavailable(StoreError):
    """The store did not answer, or the work was interrupted: try again later."""


class StoreFull(StoreUnavailable):
    """The store's filesystem is (nearly) full: nothing new is taken until space returns."""

    def __init__(self) -> None:
        super().__init__(OSError(errno.ENOSPC, "no space left for the store"))
        self.cause_name = "StoreFull"


class StoreRefused(StoreError):
    """The store refused the content written: trying it again will not help."""


def _refused(exc: BaseException) -> bool:
    """True when the store refused what was written (a constraint, a value it cannot hold).

    asyncpg's data and constraint errors reach SQLAlchemy as plain DBAPIErrors, so their
    SQLSTATE class (22 data exception, 23 integrity constraint violation) is read too.
    """
    if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        return sqlstate.startswith(("22", "23"))
    return isinstance(exc, sa.exc.StatementError)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise SQLAlchemy's and the network's errors met inside as the store's own."""
    try:
        yield
    except StoreError:
        raise
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        if _refused(exc):
            raise StoreRefused(exc) from exc
        raise StoreUnavailable(exc) from exc
