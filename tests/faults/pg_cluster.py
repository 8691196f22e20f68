"""A private PostgreSQL cluster (initdb/pg_ctl as the postgres user, own port and socket dir)."""

from __future__ import annotations

import contextlib
import glob
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.faults import reaper
from tests.faults.rabbit_node import free_port, port_open


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found[-1]


def _stop_orphan(folder: Path) -> bool:
    """A dead run's cluster: its postmaster killed if it still runs from `folder` (never a
    stale pid's new owner: pg_ctl would signal whatever holds it), its children with it."""
    return reaper.kill_pid_file(folder / "data" / "postmaster.pid", folder)


@dataclass
class PgCluster:
    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str, timeout: float = 120.0) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                       capture_output=True, timeout=timeout)  # fmt: skip

    @classmethod
    def start(cls) -> PgCluster:
        reaper.reap("cb-faults-pg-", _stop_orphan)
        folder = Path(tempfile.mkdtemp(prefix="cb-faults-pg-"))
        folder.chmod(0o755)
        reaper.claim(folder)
        cluster = cls(folder, free_port())
        subprocess.run(["chown", "-R", "postgres:postgres", str(folder)], check=True)
        try:
            cluster._as_postgres(_bin("initdb"), "-D", str(cluster.data), "-A", "trust",
                                 "-U", "postgres", "--no-sync")  # fmt: skip
            cluster.pg_ctl("start")
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def pg_ctl(self, action: str, *extra: str) -> None:
        self._as_postgres(
            _bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
            "-l", str(self.folder / "log"), action, *extra,
        )  # fmt: skip
        if action in ("start", "restart"):
            end = time.monotonic() + 60
            while not port_open(self.port):
                if time.monotonic() > end:
                    raise RuntimeError("private PostgreSQL did not start")
                time.sleep(0.1)

    def psql(self, sql: str) -> str:
        """Run one statement with psql as postgres; its single value, as text."""
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", _bin("psql"), "-h", "127.0.0.1",
             "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-Atc", sql],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                  "-w", "stop", timeout=60)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class PgPair:
    """A primary and a streaming standby (private clusters), with synchronous replication: a
    commit the primary acknowledges is on the standby too, so a failover loses nothing acked."""

    primary: PgCluster
    standby: PgCluster

    @property
    def url(self) -> str:
        """Both hosts; asyncpg takes the one that accepts writes."""
        return (f"postgresql+asyncpg://postgres@/postgres?host=127.0.0.1:{self.primary.port}"
                f"&host=127.0.0.1:{self.standby.port}&target_session_attrs=read-write")  # fmt: skip

    @classmethod
    def start(cls) -> PgPair:
        primary = PgCluster.start()
        folder = Path(tempfile.mkdtemp(prefix="cb-faults-pg-standby-"))
        folder.chmod(0o755)
        reaper.claim(folder)
        standby = PgCluster(folder, free_port())
        try:
            subprocess.run(["chown", "-R", "postgres:postgres", str(folder)], check=True)
            standby._as_postgres(_bin("pg_basebackup"), "-h", "127.0.0.1",
                                 "-p", str(primary.port), "-U", "postgres",
                                 "-D", str(standby.data), "-R", "-X", "stream")  # fmt: skip
            standby.pg_ctl("start")
            primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
            primary.psql("SELECT pg_reload_conf()")
            end = time.monotonic() + 60
            while primary.psql("SELECT count(*) FROM pg_stat_replication "
                               "WHERE sync_state = 'sync'") != "1":  # fmt: skip
                if time.monotonic() > end:
                    raise RuntimeError("the standby never became synchronous")
                time.sleep(0.2)
        except BaseException:
            standby.destroy()
            primary.destroy()
            raise
        return cls(primary, standby)

    def fail_over(self, gap: float = 0.0) -> None:
        """Kill the primary (immediate stop: no shutdown checkpoint), then after `gap` seconds
        (the standby answering, read-only) promote the standby."""
        self.primary.pg_ctl("stop", "-m", "immediate")
        time.sleep(gap)
        self.standby._as_postgres(_bin("pg_ctl"), "-D", str(self.standby.data), "-w",
                                  "-t", "60", "promote")  # fmt: skip

    def destroy(self) -> None:
        self.standby.destroy()
        self.primary.destroy()
