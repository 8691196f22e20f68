"""PostgreSQL roles: the owner migrates; the engine's role reads and writes the tables, and may
only add to and read the audit log.

    carebridge migrate ─► base.migrate_as_owner: the migrations, then grant_engine, one transaction
    carebridge run     ─► Store.open ─► audit_exposure: what the engine's own role could still
                          do to the audit log (logged as a warning when anything)

On PostgreSQL, UPDATE, DELETE and TRUNCATE each need their privilege; DROP TABLE, DROP TRIGGER
and ALTER TABLE need ownership of the table (or of its schema). An engine role that holds only
SELECT and INSERT on ``audit_log`` and owns neither it nor the schema cannot change or erase a
row of it, nor lift the triggers that refuse the owner's own UPDATE, DELETE and TRUNCATE.
SQLite has no roles: there the triggers are the only guard, and whoever can write the file
can edit it (docs/deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

AUDIT_TABLE = "audit_log"
_READ_ONLY = frozenset({"alembic_version"})
_EXPOSURE = sa.text(
    """
    SELECT r.rolsuper,
           pg_has_role(current_user, c.relowner, 'MEMBER') AS owns_table,
           pg_has_role(current_user, n.nspowner, 'MEMBER') AS owns_schema,
           has_table_privilege(c.oid, 'UPDATE') AS may_update,
           has_table_privilege(c.oid, 'DELETE') AS may_delete,
           has_table_privilege(c.oid, 'TRUNCATE') AS may_truncate,
           has_table_privilege(c.oid, 'TRIGGER') AS may_trigger
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_roles r ON r.rolname = current_user
    WHERE c.oid = to_regclass('audit_log')
    """
)


class RoleProblem(Exception):
    """The owner and engine roles cannot give the guarantee: the message says why."""


@dataclass(frozen=True, slots=True)
class Migrated:
    revision: str | None
    engine_role: str | None
    """The role granted the engine's privileges, or None when the owner runs the engine too."""
    tables: tuple[str, ...] = ()


def audit_exposure(connection: Connection) -> list[str]:
    """What this connection's role could do to erase or change the audit log ([] on SQLite,
    which has no roles, and where the audit log is missing)."""
    if connection.dialect.name != "postgresql":
        return []
    row = connection.execute(_EXPOSURE).mappings().first()
    if row is None:
        return []
    names = {
        "rolsuper": "is a superuser",
        "owns_table": "owns audit_log",
        "owns_schema": "owns its schema",
        "may_update": "may UPDATE it",
        "may_delete": "may DELETE from it",
        "may_truncate": "may TRUNCATE it",
        "may_trigger": "may create triggers on it",
    }
    return [text for key, text in names.items() if row[key]]


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(name)


def _check_engine_role(connection: Connection, role: str) -> None:
    found = connection.execute(
        sa.text(
            "SELECT r.rolsuper, pg_has_role(r.oid, current_user, 'MEMBER') AS owner_member, "
            "pg_has_role(r.oid, n.nspowner, 'MEMBER') AS schema_member "
            "FROM pg_roles r, pg_namespace n "
            "WHERE r.rolname = :role AND n.nspname = current_schema()"
        ),
        {"role": role},
    ).first()
    if found is None:
        raise RoleProblem(f"no role named {role!r} (the user of store.url)")
    superuser, owner_member, schema_member = found
    if superuser:
        raise RoleProblem(f"the engine's role {role!r} is a superuser: it could erase the audit")
    if owner_member:
        raise RoleProblem(f"the engine's role {role!r} is, or is a member of, the owner's role")
    if schema_member:
        raise RoleProblem(f"the engine's role {role!r} owns the schema: it could drop tables")


def grant_engine(connection: Connection, role: str) -> tuple[str, ...]:
    """As the owner: give `role` what the engine needs on every table the owner owns in this
    schema (SELECT, INSERT, UPDATE, DELETE; SELECT on alembic_version; on the audit log only
    SELECT and INSERT) and nothing else. Idempotent; run after every migration."""
    _check_engine_role(connection, role)
    who = _quote(connection, role)
    schema = _quote(
        connection, str(connection.execute(sa.text("SELECT current_schema()")).scalar())
    )
    tables = tuple(
        connection.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tableowner = current_user ORDER BY tablename"
            )
        ).scalars()
    )
    connection.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {who}"))
    for table in tables:
        if table == AUDIT_TABLE:
            allowed = "SELECT, INSERT"
        elif table in _READ_ONLY:
            allowed = "SELECT"
        else:
            allowed = "SELECT, INSERT, UPDATE, DELETE"
        name = _quote(connection, table)
        connection.execute(sa.text(f"REVOKE ALL ON {name} FROM {who}"))
        connection.execute(sa.text(f"GRANT {allowed} ON {name} TO {who}"))
    connection.execute(sa.text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {who}"))
    return tables


def engine_role(url: str, owner_url: str | None) -> str | None:
    """The role `carebridge migrate` grants to: the user of store.url (`url`) when the owner's
    connection (`owner_url`) is another role; None when there is no separate owner."""
    if owner_url is None:
        return None
    role, owner = sa.make_url(url).username, sa.make_url(owner_url).username
    if not role:
        raise RoleProblem("store.url names no user: the engine's role is granted to by name")
    if role == owner:
        raise RoleProblem(
            "store.url and the owner's URL name the same role: the engine would own the audit log"
        )
    return role
