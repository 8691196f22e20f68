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

from tests.faults.rabbit_node import free_port, port_open


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found[-1]


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
        folder = Path(tempfile.mkdtemp(prefix="cb-faults-pg-"))
        folder.chmod(0o755)
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

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                  "-w", "stop", timeout=60)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
