"""A SQLite store on a filesystem that fills up (a real 4 MB tmpfs; needs root to mount): a
write that finds the disk full is `StoreUnavailable` (wait and retry), never `StoreRefused`
(which would set the message aside); `has_room` turns False below `min_free_bytes`, and both
come back when space returns."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import StoreConfig
from engine.store import Store, StoreFull, StoreRefused, StoreUnavailable
from tests.store.test_store import record

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


async def test_a_full_disk_is_unavailable_and_writes_resume_when_space_returns(
    small_disk: Path,
) -> None:
    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{small_disk / 'cb.db'}",
                                         min_free_bytes=512 * 1024))  # fmt: skip
    try:
        await store.record_intake([record("before")])
        assert store.has_room()
        filler = fill(small_disk)
        await asyncio.sleep(0.6)  # has_room looks at most every half second
        assert not store.has_room()
        with pytest.raises(StoreFull):
            store.check_room()
        big = os.urandom(256 * 1024)  # more than any page cache slack left on the tmpfs
        with pytest.raises(StoreUnavailable) as raised:
            await store.record_intake([record("during", payload=big)])
        assert not isinstance(raised.value, StoreRefused)
        assert raised.value.cause_name == "OperationalError"
        assert await store.ping(), "reads still answer"
        filler.unlink()
        await asyncio.sleep(0.6)
        assert store.has_room()
        results = await store.record_intake([record("during", payload=big), record("after")])
        assert [r.status for r in results] == ["accepted", "accepted"]
    finally:
        await store.close()
