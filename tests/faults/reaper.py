"""Reap the private RabbitMQ nodes and PostgreSQL clusters of fault-suite runs that died.

A run killed from outside (`timeout`, SIGKILL, a closed terminal) never reaches its fixtures'
teardown: its private node kept running, listening and holding memory, until someone found it.
Each private server's folder now names the test process that made it (`owner`); before it
starts one, a run stops and removes the servers whose owner is gone. A folder whose owner still
runs (a concurrent run, a helper's) is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OWNER = "owner"
STALE_WITHOUT_OWNER_S = 6 * 3600.0
"""A folder from before owners were written: reaped once it is this old."""


def claim(folder: Path) -> None:
    """Mark `folder` as this process's."""
    (folder / OWNER).write_text(f"{os.getpid()}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned(folder: Path, *, now: float | None = None) -> bool:
    """True if the process that made `folder` is gone (or, with no owner, it is very old)."""
    try:
        owner = int((folder / OWNER).read_text().strip())
    except FileNotFoundError:
        try:
            age = (now or time.time()) - folder.stat().st_mtime
        except FileNotFoundError:
            return False
        return age > STALE_WITHOUT_OWNER_S
    except (OSError, ValueError):
        return False
    return owner != os.getpid() and not _alive(owner)


def runs_from(pid: int, folder: Path) -> bool:
    """True if process `pid` runs with `folder` in its command line or its environment (a
    private server started from it names its data folder there: PostgreSQL's -D, RabbitMQ's
    RABBITMQ_MNESIA_BASE); a pid file's stale pid, reused by another process since, is not."""
    name = str(folder).encode()
    for part in ("cmdline", "environ"):
        try:
            if name in Path(f"/proc/{pid}/{part}").read_bytes():
                return True
        except OSError:
            return False
    return False


def pid_in(pid_file: Path) -> int | None:
    """The process id on the first line of `pid_file` (RabbitMQ's pid file, postmaster.pid)."""
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_pid_file(pid_file: Path, folder: Path) -> bool:
    """SIGKILL the process named by `pid_file` if it still runs from `folder`; False if it is
    still there afterwards."""
    pid = pid_in(pid_file)
    if pid is None or not runs_from(pid, folder):
        return True
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGCONT)  # a frozen node too
        os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if not runs_from(pid, folder):
            return True
        time.sleep(0.05)
    return False


def reap(prefix: str, stop: Callable[[Path], bool], *, root: Path | None = None) -> list[Path]:
    """Stop (`stop(folder)`: True once nothing runs from it) and remove every orphaned
    `prefix*` folder under `root` (the temp dir); the folders reaped. A folder whose server
    could not be stopped is kept, for the next run to try again."""
    reaped: list[Path] = []
    for folder in sorted((root or Path(tempfile.gettempdir())).glob(f"{prefix}*")):
        if not folder.is_dir() or not orphaned(folder):
            continue
        try:
            stopped = stop(folder)
        except Exception:
            stopped = False
        if stopped:
            shutil.rmtree(folder, ignore_errors=True)
            reaped.append(folder)
    return reaped
