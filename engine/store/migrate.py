"""Bring the store's schema to the newest migration, safely with several replicas starting."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from engine.store.schema import metadata

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant will do: it only has to be the same for every replica of this application.
_PG_MIGRATION_LOCK = 0x43415245  # "CARE"
_INSUFFICIENT_PRIVILEGE = "42501"


class MigrationRefused(Exception):
    """The schema is behind this build and this connection's role may not change it."""


def _script() -> tuple[AlembicConfig, ScriptDirectory]:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config, ScriptDirectory.from_config(config)


def upgrade(connection: Connection) -> None:
    """Apply every pending migration inside the caller's transaction."""
    if connection.dialect.name == "postgresql":
        # Two replicas starting at once must not both create the tables.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    config, script = _script()

    def steps(revision: str, _context: object) -> object:
        return script._upgrade_revs("head", revision)

    try:
        with EnvironmentContext(config, script, fn=steps, destination_rev="head") as env:
            env.configure(connection=connection, target_metadata=metadata)
            env.run_migrations()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
            raise
        # On PostgreSQL the engine may run as a role that owns nothing (docs/deploy.md).
        raise MigrationRefused(
            f"the store's schema needs migrating to {head_revision()} and this role may not "
            "change it: run `carebridge migrate` with the owner's connection "
            "(store.migrate_url; docs/deploy.md)"
        ) from exc


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return _script()[1].get_current_head()
