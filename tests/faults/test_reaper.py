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


def _folder(root: Path, name: str, owner: int | None, server: subprocess.Popen[bytes]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "pid").write_text(f"{server.pid}\n")
    if owner is not None:
        (folder / reaper.OWNER).write_text(f"{owner}\n")
    return folder


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _gone(process: subprocess.Popen[bytes], deadline: float = 20.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_a_dead_runs_server_is_stopped_and_its_folder_removed(tmp_path: Path) -> None:
    orphan_server, live_server, old_server, new_server = (_sleeper() for _ in range(4))
    try:
        orphan = _folder(tmp_path, "cb-x-orphan", _dead_pid(), orphan_server)
        live = _folder(tmp_path, "cb-x-live", os.getpid(), live_server)
        old = _folder(tmp_path, "cb-x-old", None, old_server)
        ancient = time.time() - reaper.STALE_WITHOUT_OWNER_S - 60
        os.utime(old, (ancient, ancient))
        recent = _folder(tmp_path, "cb-x-recent", None, new_server)
        other = tmp_path / "not-ours"
        other.mkdir()

        reaped = reaper.reap(
            "cb-x-", lambda dead: reaper.kill_pid_file(dead / "pid"), root=tmp_path
        )

        assert sorted(reaped) == sorted([orphan, old])
        assert _gone(orphan_server)
        assert _gone(old_server)
        assert not orphan.exists()
        assert not old.exists()
        # a live owner's server, a recent folder without an owner, and other folders stay
        assert live_server.poll() is None
        assert new_server.poll() is None
        assert all(folder.exists() for folder in (live, recent, other))
    finally:
        for server in (orphan_server, live_server, old_server, new_server):
            server.kill()
            server.wait()


def test_claim_names_this_process(tmp_path: Path) -> None:
    reaper.claim(tmp_path)
    assert (tmp_path / reaper.OWNER).read_text().strip() == str(os.getpid())
    assert not reaper.orphaned(tmp_path)
