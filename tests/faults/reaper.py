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


def kill_pid_file(pid_file: Path) -> None:
    """SIGKILL the process whose id is the first line of `pid_file`, if it still runs."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGCONT)  # a frozen node too
        os.kill(pid, signal.SIGKILL)


def reap(prefix: str, stop: Callable[[Path], None], *, root: Path | None = None) -> list[Path]:
    """Stop (`stop(folder)`) and remove every orphaned `prefix*` folder under `root` (the
    temp dir); the folders reaped."""
    reaped: list[Path] = []
    for folder in sorted((root or Path(tempfile.gettempdir())).glob(f"{prefix}*")):
        if not folder.is_dir() or not orphaned(folder):
            continue
        with contextlib.suppress(Exception):
            stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
        reaped.append(folder)
    return reaped
