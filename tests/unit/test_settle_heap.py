"""`settle_heap`: what is alive once the engine has started is set aside from the collector."""

from __future__ import annotations

import gc
import weakref

from engine.app import YOUNG_GENERATION, settle_heap


def test_settle_heap_freezes_what_is_alive_and_later_collections_skip_it() -> None:
    assert gc.get_freeze_count() == 0
    kept = [[i] for i in range(1000)]  # containers: tracked by the collector
    threshold = gc.get_threshold()
    try:
        frozen = settle_heap()
        assert gc.get_threshold() == (YOUNG_GENERATION, *threshold[1:])
        # What settle_heap counted as it froze; a frozen object freed since by reference
        # counting (another thread of the suite letting go of one) leaves the count.
        assert frozen > len(kept)
        assert len(kept) < gc.get_freeze_count() <= frozen
        assert not any(obj is kept for obj in gc.get_objects())  # out of every generation
        made_after: list[list[int]] = [[] for _ in range(10)]
        assert any(obj is made_after for obj in gc.get_objects())
    finally:
        gc.unfreeze()  # this process runs many engines: give it back to the collector
        gc.set_threshold(*threshold)
    assert gc.get_freeze_count() == 0
    assert any(obj is kept for obj in gc.get_objects())


class Node:
    other: Node | None = None


def test_after_settle_heap_a_cycle_made_later_is_still_collected() -> None:
    threshold = gc.get_threshold()
    try:
        settle_heap()
        node = Node()
        node.other = node  # a reference cycle, made after start-up
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
