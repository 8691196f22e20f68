"""How the store tells a fault of the content from a store that is not answering."""

from __future__ import annotations

import sqlalchemy as sa


def refused_content(exc: BaseException) -> bool:
    """True when the store refused what was written (a constraint, a value it cannot hold).

    Anything else (connection refused or dropped, a server starting up, a lock timeout) is the
    store being unavailable: worth waiting for, never a reason to set a message aside. asyncpg's
    data and constraint errors reach SQLAlchemy as plain DBAPIErrors, so their SQLSTATE class
    (22 data exception, 23 integrity constraint violation) is read too.
    """
    if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        return sqlstate.startswith(("22", "23"))
    return isinstance(exc, sa.exc.StatementError)
