"""`settle_heap`: what is alive once the engine has started is set aside from the collector."""

from __future__ import annotations

import gc

from engine.app import settle_heap


def test_settle_heap_freezes_what_is_alive_and_later_collections_skip_it() -> None:
    assert gc.get_freeze_count() == 0
    kept = [[i] for i in range(1000)]  # containers: tracked by the collector
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() > len(kept)
        assert not any(obj is kept for obj in gc.get_objects())  # out of every generation
        made_after: list[list[int]] = [[] for _ in range(10)]
        assert any(obj is made_after for obj in gc.get_objects())
    finally:
        gc.unfreeze()  # this process runs many engines: give it back to the collector
    assert gc.get_freeze_count() == 0
    assert any(obj is kept for obj in gc.get_objects())
