"""An audit log the engine cannot edit (issue 15 point 8), on a private PostgreSQL cluster with
an owner role and an engine role: `carebridge migrate` runs as the owner and grants the engine
its privileges; the engine's own connection then fails at every way of changing or erasing the
audit log (UPDATE, DELETE, TRUNCATE, DROP TRIGGER, DROP TABLE, ALTER TABLE, taking the owner's
role), while the engine on that role takes messages in and its console's reads and actions are
audited."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from engine.config import StoreConfig
from engine.store import Store, audit
from engine.store.roles import audit_exposure
from tests.adt_factory import adt, patients
from tests.e2e.harness import (
    CAREBRIDGE,
    EngineProcess,
    config_env,
    delete_queues,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)
from tests.faults.kit import TimedReceiver, new_source
from tests.faults.pg_cluster import PgCluster, _bin

pytestmark = pytest.mark.integration

OWNER, ENGINE, DATABASE = "cb_owner", "cb_engine", "carebridge"
TOKEN = "a" * 40
SECRET = "s" * 40
ERASING = [
    "UPDATE audit_log SET actor = 'nobody'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "DROP TRIGGER audit_log_append_only ON audit_log",
    "DROP TRIGGER audit_log_no_truncate ON audit_log",
    "DROP TABLE audit_log",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "ALTER TABLE audit_log RENAME TO audit_log_old",
    "ALTER TABLE audit_log OWNER TO cb_engine",
    "CREATE TRIGGER hush BEFORE INSERT ON audit_log FOR EACH ROW "
    "EXECUTE FUNCTION audit_log_append_only()",
    "DROP SCHEMA public CASCADE",
    "SET ROLE cb_owner",
]


def _psql(cluster: PgCluster, sql: str, database: str = "postgres") -> None:
    subprocess.run(
        [_bin("psql"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
         "-d", database, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    """A private cluster with the deployment's two roles and a database the owner owns."""
    cluster = PgCluster.start()
    try:
        _psql(cluster, f"CREATE ROLE {OWNER} LOGIN")
        _psql(cluster, f"CREATE ROLE {ENGINE} LOGIN")
        _psql(cluster, f"CREATE DATABASE {DATABASE} OWNER {OWNER}")
        yield cluster
    finally:
        cluster.destroy()


def _url(cluster: PgCluster, role: str) -> str:
    return f"postgresql+asyncpg://{role}@127.0.0.1:{cluster.port}/{DATABASE}"


def _dsn(cluster: PgCluster, role: str) -> str:
    return f"postgresql://{role}@127.0.0.1:{cluster.port}/{DATABASE}"


def _carebridge(
    command: str, config: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CAREBRIDGE), command, "-c", str(config)], capture_output=True, text=True,
        timeout=120, env={**os.environ, **config_env(config), **(env or {})},
    )  # fmt: skip


def _config(folder: Path, cluster: PgCluster, source: str, receiver_url: str) -> Path:
    console = f"""
console:
  port: {free_port()}
  session_secret: ${{CB_TEST_SESSION_SECRET}}
  tokens:
    - {{name: auditor, role: admin, token: "${{CB_TEST_CONSOLE_TOKEN}}"}}
"""
    return engine_config(folder, [source], receiver_url, http_port=free_port(),
                         store_url=_url(cluster, ENGINE), extra=console)  # fmt: skip


def _migrate(config: Path, cluster: PgCluster) -> subprocess.CompletedProcess[str]:
    return _carebridge("migrate", config, {"CAREBRIDGE_MIGRATE_URL": _url(cluster, OWNER)})


ENV = {"CB_TEST_SESSION_SECRET": SECRET, "CB_TEST_CONSOLE_TOKEN": TOKEN}


async def test_the_engine_role_cannot_erase_or_change_the_audit_log(
    pg: PgCluster, tmp_path: Path
) -> None:
    config = _config(tmp_path, pg, new_source("audit"), "http://127.0.0.1:9/events")
    refused = _carebridge("run", config, ENV)
    assert refused.returncode == 1
    assert "run `carebridge migrate` with the owner's connection" in refused.stderr

    done = _migrate(config, pg)
    assert done.returncode == 0, done.stderr
    assert f"role {ENGINE} may SELECT, INSERT, UPDATE and DELETE on" in done.stdout
    assert "only SELECT and INSERT on audit_log" in done.stdout

    store = await Store.open(StoreConfig(url=_url(pg, ENGINE)))
    try:
        await audit.record(store, _Actor(), audit.AuditEntry("view_audit", detail="seed"))
        async with store.engine.connect() as conn:
            assert await conn.run_sync(audit_exposure) == []
    finally:
        await store.close()

    engine = await asyncpg.connect(_dsn(pg, ENGINE))
    try:
        denied: list[str] = []
        for statement in ERASING:
            try:
                await engine.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                denied.append(statement)
        assert denied == ERASING
        # A role may not grant itself what it lacks: PostgreSQL only warns, and grants nothing.
        await engine.execute("GRANT DELETE, UPDATE, TRUNCATE ON audit_log TO cb_engine")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await engine.execute("DELETE FROM audit_log")
        assert await engine.fetchval("SELECT count(*) FROM audit_log") == 1
        await engine.execute(
            "INSERT INTO audit_log (at, actor, role, action) VALUES (now(), 'e', 'admin', 'x')"
        )
    finally:
        await engine.close()

    owner = await asyncpg.connect(_dsn(pg, OWNER))
    try:
        triggers = await owner.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass "
            "AND NOT tgisinternal ORDER BY tgname"
        )
        assert [t["tgname"] for t in triggers] == ["audit_log_append_only",
                                                    "audit_log_no_truncate"]  # fmt: skip
        for statement in ("TRUNCATE audit_log", "DELETE FROM audit_log"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await owner.execute(statement)  # even the owner, while the triggers stand
        assert await owner.fetchval("SELECT count(*) FROM audit_log") == 2
    finally:
        await owner.close()

    again = _migrate(config, pg)  # idempotent: a later deploy runs it again
    assert again.returncode == 0, again.stderr


class _Actor:
    name = "tester"
    role = "admin"


async def test_the_engine_runs_on_its_role_and_audits_its_console(
    pg: PgCluster, tmp_path: Path, receiver: TimedReceiver
) -> None:
    source = new_source("audit")
    config = _config(tmp_path, pg, source, receiver.url)
    assert _migrate(config, pg).returncode == 0
    port = int(config.read_text().split("console:\n  port: ")[1].split()[0])
    http_port = int(config.read_text().split("http: {host: 127.0.0.1, port: ")[1].split("}")[0])
    engine = EngineProcess(config, http_port, tmp_path / "engine.log")
    try:
        await engine.start(env=ENV)
        [patient] = patients(1, run="AUD")
        await publish_all(source, [adt("A03", patient, "AUD-1", datetime.now(UTC))])
        await wait_until(lambda: len(receiver.applied) == 1, deadline=60, what="delivered")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(base_url=base, headers=headers) as console:
            async with console.get("/messages", params={"source": source}) as r:
                assert r.status == 200
            async with console.get("/audit") as r:
                assert r.status == 200
            async with console.post("/messages/1/replay", data={"comment": "re-send"}) as r:
                assert r.status == 200  # a script's request: JSON, no redirect
        await wait_until(lambda: len(receiver.receipts) == 2, deadline=60, what="replayed")
        assert not any("audit_log_not_guarded" in line for line in engine.log_lines())
    finally:
        if engine.process is not None and engine.process.returncode is None:
            await engine.terminate()
        await asyncio.to_thread(delete_queues, [f"carebridge.inbound.{source}"])
    owner = await asyncpg.connect(_dsn(pg, OWNER))
    try:
        rows = await owner.fetch("SELECT actor, action, detail FROM audit_log ORDER BY id")
    finally:
        await owner.close()
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("auditor", "list_messages"), ("auditor", "view_audit"), ("auditor", "replay")]  # fmt: skip
    assert rows[0]["detail"] == f"filters source={source!r}; 1 rows: messages 1"
