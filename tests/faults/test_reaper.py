"""The fault suite's reaper stops the private servers of dead runs and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.faults import reaper


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def _server(folder: Path | None = None, *, in_env: bool = False) -> subprocess.Popen[bytes]:
    """A process standing in for a private server: one started from `folder` names it in its
    command line (as PostgreSQL's -D) or, `in_env`, in its environment (as RabbitMQ's
    RABBITMQ_MNESIA_BASE)."""
    argv = [sys.executable, "-c", "import time; time.sleep(120)"]
    if folder is None:
        return subprocess.Popen(argv)
    if in_env:
        return subprocess.Popen(argv, env={**os.environ, "STAND_IN_BASE": str(folder / "m")})
    return subprocess.Popen([*argv, str(folder / "data")])


def _folder(root: Path, name: str, owner: int | None) -> Path:
    folder = root / name
    folder.mkdir()
    if owner is not None:
        (folder / reaper.OWNER).write_text(f"{owner}\n")
    return folder


def _gone(process: subprocess.Popen[bytes], deadline: float = 20.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def _stop(folder: Path) -> bool:
    return reaper.kill_pid_file(folder / "pid", folder)


def test_a_dead_runs_server_is_stopped_and_its_folder_removed(tmp_path: Path) -> None:
    other_run = _server()  # a concurrent run: alive, not this process
    servers: list[subprocess.Popen[bytes]] = [other_run]
    try:
        orphan = _folder(tmp_path, "cb-x-orphan", _dead_pid())
        live = _folder(tmp_path, "cb-x-live", other_run.pid)
        old = _folder(tmp_path, "cb-x-old", None)
        recent = _folder(tmp_path, "cb-x-recent", None)
        for folder in (orphan, live, old, recent):
            servers.append(server := _server(folder, in_env=folder is old))
            (folder / "pid").write_text(f"{server.pid}\n")
        ancient = time.time() - reaper.STALE_WITHOUT_OWNER_S - 60
        os.utime(old, (ancient, ancient))
        other = tmp_path / "not-ours"
        other.mkdir()

        assert sorted(reaper.reap("cb-x-", _stop, root=tmp_path)) == sorted([orphan, old])

        _, orphan_server, live_server, old_server, recent_server = servers
        assert _gone(orphan_server)
        assert _gone(old_server)
        assert not orphan.exists()
        assert not old.exists()
        # a live run's server, a recent folder without an owner, and other folders stay
        assert live_server.poll() is None
        assert recent_server.poll() is None
        assert all(folder.exists() for folder in (live, recent, other))
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_a_stale_pid_now_of_another_process_is_not_killed(tmp_path: Path) -> None:
    """The pid file of a server that died with its run may name a pid the system has given to
    another process since (the shared broker, another run's server): never signalled."""
    stranger = _server()  # does not run from the folder
    try:
        orphan = _folder(tmp_path, "cb-x-stale", _dead_pid())
        (orphan / "pid").write_text(f"{stranger.pid}\n")
        assert reaper.reap("cb-x-", _stop, root=tmp_path) == [orphan]
        assert stranger.poll() is None
        assert not orphan.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_a_server_that_will_not_stop_keeps_its_folder(tmp_path: Path) -> None:
    orphan = _folder(tmp_path, "cb-x-stuck", _dead_pid())
    assert reaper.reap("cb-x-", lambda _folder: False, root=tmp_path) == []
    assert orphan.exists()


def test_claim_names_this_process(tmp_path: Path) -> None:
    reaper.claim(tmp_path)
    assert (tmp_path / reaper.OWNER).read_text().strip() == str(os.getpid())
    assert not reaper.orphaned(tmp_path)
