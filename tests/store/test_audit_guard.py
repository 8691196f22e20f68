"""The audit log's guards on each backend, and `carebridge migrate` where there is one role:
the engine says when its own role could erase the audit log (a superuser here); PostgreSQL
refuses TRUNCATE as well as UPDATE and DELETE; SQLite, which has no roles, migrates as before.
The two-role deployment itself is tested on a private cluster: tests/faults/test_audit_roles.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from engine.config import StoreConfig
from engine.store import RoleProblem, Store, audit, console_reads, migrate, migrate_as_owner
from engine.store.roles import audit_exposure, engine_role
from tests.conftest import create_pg_database, drop_pg_database, pg_url

CAREBRIDGE = Path(sys.executable).with_name("carebridge")


class _Actor:
    name = "tester"
    role = "admin"


async def test_the_store_says_what_its_own_role_could_do_to_the_audit_log(store: Store) -> None:
    async with store.engine.connect() as conn:
        exposure = await conn.run_sync(audit_exposure)
    if store.engine.dialect.name == "sqlite":
        assert exposure == []  # no roles: the triggers are the only guard
    else:
        assert exposure[:2] == ["is a superuser", "owns audit_log"]
        assert "may TRUNCATE it" in exposure


@pytest.mark.integration
async def test_opening_as_a_role_that_could_erase_the_audit_log_warns() -> None:
    database = await create_pg_database()
    try:
        with capture_logs() as logs:
            opened = await Store.open(StoreConfig(url=pg_url(database)))
        await opened.close()
    finally:
        await drop_pg_database(database)
    [warning] = [e for e in logs if e["event"] == "store.audit_log_not_guarded"]
    assert warning["log_level"] == "warning"
    assert "is a superuser" in warning["role_can"]


async def test_truncate_is_refused_on_postgresql(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    await audit.record(store, _Actor(), audit.AuditEntry("view_audit"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("TRUNCATE audit_log"))
    assert len(await console_reads.audit_entries(store)) == 1


def test_the_engine_role_is_the_user_of_store_url_and_never_the_owner() -> None:
    owner = "postgresql+asyncpg://cb_owner@db/carebridge"
    assert engine_role("postgresql+asyncpg://cb_engine@db/carebridge", owner) == "cb_engine"
    assert engine_role("postgresql+asyncpg://cb_owner@db/carebridge", None) is None
    with pytest.raises(RoleProblem, match="same role"):
        engine_role("postgresql+asyncpg://cb_owner:x@db/carebridge", owner)
    with pytest.raises(RoleProblem, match="names no user"):
        engine_role("postgresql+asyncpg://db/carebridge", owner)


def _migrate(config: Path, owner_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CAREBRIDGE_MIGRATE_URL"}
    if owner_url is not None:
        env["CAREBRIDGE_MIGRATE_URL"] = owner_url
    return subprocess.run([str(CAREBRIDGE), "migrate", "-c", str(config)], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


def test_migrate_on_sqlite_needs_no_owner_and_refuses_one(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    # Only store: is read, so the engine's other secrets need not be set for the migrate job.
    config.write_text(
        f"store: {{url: 'sqlite+aiosqlite:///{tmp_path / 'cb.db'}'}}\n"
        "console: {session_secret: '${UNSET_IN_THE_MIGRATE_JOB}'}\n"
    )
    done = _migrate(config)
    assert done.returncode == 0, done.stderr
    head = migrate.head_revision()
    assert done.stdout.startswith(f"store migrated to {head}; no separate engine role")
    refused = _migrate(config, "postgresql+asyncpg://cb_owner@127.0.0.1/carebridge")
    assert refused.returncode == 1
    assert refused.stderr == "carebridge: an owner's URL is for PostgreSQL: SQLite has no roles\n"


@pytest.mark.integration
async def test_migrate_refuses_an_owner_that_is_the_engines_own_role(tmp_path: Path) -> None:
    database = await create_pg_database()
    try:
        config = tmp_path / "c.yaml"
        config.write_text(f"store: {{url: '{pg_url(database)}'}}\n")
        refused = _migrate(config, pg_url(database))
        assert refused.returncode == 1
        assert "name the same role: the engine would own the audit log" in refused.stderr
        done = _migrate(config)
        assert done.returncode == 0, done.stderr
        opened = await Store.open(StoreConfig(url=pg_url(database)))
        await opened.close()
    finally:
        await drop_pg_database(database)


async def test_migrate_as_owner_on_sqlite_is_the_store_opening(tmp_path: Path) -> None:
    done = await migrate_as_owner(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    assert (done.engine_role, done.tables) == (None, ())
    assert done.revision is not None


def test_migrate_refuses_a_password_written_into_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("store: {url: 'postgresql+asyncpg://cb_engine:hunter22@127.0.0.1/cb'}\n")
    refused = _migrate(config)
    assert refused.returncode == 1
    assert refused.stderr.startswith("store.url: a password written into the file")
