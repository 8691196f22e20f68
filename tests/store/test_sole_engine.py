"""One running engine per SQLite file: a second engine on the same file refuses to start (it
would free the first one's live delivery leases and send the same events twice), a dead
engine's lock is gone with it, and PostgreSQL (several replicas) is never locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.store import FileInUse, SoleEngine


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def test_a_second_engine_on_the_same_file_is_refused_until_the_first_releases(
    tmp_path: Path,
) -> None:
    first = SoleEngine.take(_url(tmp_path / "carebridge.db"))
    assert first is not None
    with pytest.raises(FileInUse, match=rf"pid {os.getpid()}\b.*one SQLite file serves one"):
        SoleEngine.take(_url(tmp_path / "carebridge.db"))
    other = SoleEngine.take(_url(tmp_path / "other.db"))  # another file: its own lock
    assert other is not None
    first.release()
    again = SoleEngine.take(_url(tmp_path / "carebridge.db"))
    assert again is not None
    again.release()
    other.release()


def test_a_relative_path_and_an_absolute_one_are_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    held = SoleEngine.take("sqlite+aiosqlite:///carebridge.db")
    assert held is not None
    with pytest.raises(FileInUse):
        SoleEngine.take(_url(tmp_path / "carebridge.db"))
    held.release()


def test_postgresql_and_memory_take_no_lock() -> None:
    assert SoleEngine.take("postgresql+asyncpg://carebridge@db/carebridge") is None
    assert SoleEngine.take("sqlite+aiosqlite:///:memory:") is None
    assert SoleEngine.take("sqlite+aiosqlite://") is None


def test_the_lock_of_a_killed_engine_is_gone_with_it(tmp_path: Path) -> None:
    url = _url(tmp_path / "carebridge.db")
    holder = subprocess.Popen(  # holds the lock, says so, then waits to be killed
        [sys.executable, "-c",
         "import sys, time\nfrom engine.store import SoleEngine\n"
         f"SoleEngine.take({url!r})\nprint('held', flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(FileInUse, match=rf"pid {holder.pid}\b"):
            SoleEngine.take(url)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.monotonic() + 30
    while True:  # the kernel drops the lock with the process
        try:
            taken = SoleEngine.take(url)
            break
        except FileInUse:
            assert time.monotonic() < deadline, "the dead engine's lock was never dropped"
            time.sleep(0.05)
    assert taken is not None
    taken.release()


def test_carebridge_run_refuses_a_file_another_engine_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "carebridge.db"
    config = tmp_path / "engine.yaml"
    config.write_text(
        "amqp: {url: 'amqp://127.0.0.1:1/'}\n"  # never reached: refused before
        f"store: {{url: '{_url(database)}'}}\n"
        "sources: [{name: mh-trust}]\n"
        "destinations: [{name: events, type: amqp, exchange: carebridge.events}]\n"
        "routes: [{name: all, to: [events]}]\n"
    )
    held = SoleEngine.take(_url(database))
    try:
        assert main(["run", "-c", str(config)]) == 1
    finally:
        assert held is not None
        held.release()
    err = capsys.readouterr().err
    assert "another engine" in err
    assert str(database) in err
    assert not database.exists()  # refused before the store was opened or migrated


def test_a_symlink_and_the_uri_form_name_the_same_file(tmp_path: Path) -> None:
    real = tmp_path / "carebridge.db"
    real.touch()
    (tmp_path / "alias.db").symlink_to(real)
    held = SoleEngine.take(_url(tmp_path / "alias.db"))
    assert held is not None
    with pytest.raises(FileInUse, match=str(real)):
        SoleEngine.take(_url(real))
    with pytest.raises(FileInUse):
        SoleEngine.take(f"sqlite+aiosqlite:///file:{real}?uri=true")
    held.release()
    assert SoleEngine.take("sqlite+aiosqlite:///file:shared?mode=memory&uri=true") is None
