"""The store reaches PostgreSQL over TLS, verifying the server against a configured CA.

A private PostgreSQL cluster with `ssl = on` is started for this module from the installed
server binaries (the shared server has no TLS), with a CA and server certificate made here.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import StoreConfig, TlsConfig
from engine.store import Store

pytestmark = pytest.mark.integration

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=carebridge-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=folder,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
            cwd=folder)  # fmt: skip


def as_postgres(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["su", "postgres", "-c", " ".join(command)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[tuple[int, Path]]:
    if not BIN or shutil.which("openssl") is None or os.geteuid() != 0:
        pytest.skip("needs the PostgreSQL server binaries, openssl and root (to become postgres)")
    folder = Path(tempfile.mkdtemp(prefix="cb-pg-tls-"))
    data = folder / "data"
    make_certificates(folder)
    shutil.chown(folder, "postgres", "postgres")
    for name in ("server.pem", "server.key", "ca.pem"):
        shutil.chown(folder / name, "postgres", "postgres")
    (folder / "server.key").chmod(0o600)
    folder.chmod(0o755)
    init = as_postgres([f"{BIN[-1]}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"])
    assert init.returncode == 0, init.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c ssl=on "
        f"-c ssl_cert_file={folder}/server.pem -c ssl_key_file={folder}/server.key"
    )
    start = as_postgres([f"{BIN[-1]}/pg_ctl", "-D", str(data), "-o", f"'{options}'",
                         "-l", str(folder / "log"), "-w", "start"])  # fmt: skip
    assert start.returncode == 0, start.stderr + (folder / "log").read_text()
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 trust\n"
        "hostnossl all all 0.0.0.0/0 reject\n"
    )
    as_postgres([f"{BIN[-1]}/pg_ctl", "-D", str(data), "reload"])
    plain = ["psql", f"host=127.0.0.1 port={port} user=postgres sslmode=disable", "-c", "SELECT 1"]
    deadline = time.monotonic() + 30
    while subprocess.run(plain, capture_output=True, timeout=10, check=False).returncode == 0:
        assert time.monotonic() < deadline, "pg_hba.conf reload not in effect"
        time.sleep(0.05)  # polling: a reload is asynchronous and says nothing when done
    try:
        yield port, folder / "ca.pem"
    finally:
        as_postgres([f"{BIN[-1]}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


async def test_store_connects_with_tls_and_verifies_the_server(
    tls_postgres: tuple[int, Path],
) -> None:
    port, ca = tls_postgres
    url = f"postgresql+asyncpg://postgres@localhost:{port}/postgres"
    store = await Store.open(StoreConfig(url=url, tls=TlsConfig(ca_file=ca)))
    try:
        async with store.engine.connect() as conn:
            result = await conn.exec_driver_sql(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")  # fmt: skip
            assert result.scalar_one() is True
    finally:
        await store.close()


async def test_store_refuses_a_server_its_ca_does_not_vouch_for(
    tls_postgres: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ca = tls_postgres
    make_certificates(tmp_path)  # a different CA
    url = f"postgresql+asyncpg://postgres@localhost:{port}/postgres"
    with pytest.raises(Exception, match=r"(?i)certificate"):
        await Store.open(StoreConfig(url=url, tls=TlsConfig(ca_file=tmp_path / "ca.pem")))


async def test_plain_connections_are_refused_by_this_server(
    tls_postgres: tuple[int, Path],
) -> None:
    port, _ca = tls_postgres
    url = f"postgresql+asyncpg://postgres@localhost:{port}/postgres?ssl=disable"
    with pytest.raises(Exception, match=r"(?i)pg_hba|reject|no encryption"):
        await Store.open(StoreConfig(url=url))
