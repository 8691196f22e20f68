"""A local patient number is found by exact key lookups under each prefix of the log."""

from __future__ import annotations

import pytest

from engine.store import Store, console_search
from engine.store.console_search import SearchFilter
from tests.console.seed import accepted

pytestmark = pytest.mark.integration


async def ids(store: Store, f: SearchFilter) -> list[int]:
    return [r.id for r in (await console_search.search(store, f)).rows]


async def test_local_numbers_under_every_feed_and_authority(store: Store) -> None:
    await store.record_intake(
        [
            accepted("m1", "local:mh-trust:RXX:L1"),
            accepted("m2", "local:mh-trust:https://fhir.example/Id/mrn:L1"),
            accepted("m3", "local:acute::L1", source="acute"),
            accepted("m4", "local:acute:RYY:L12", source="acute"),
            accepted("m5", "local:mh-trust:RXX:XL1"),
            accepted("m6", "nhs:9434765919"),
        ]
    )
    assert await ids(store, SearchFilter(patient="L1")) == [3, 2, 1]
    assert await ids(store, SearchFilter(patient="L1", source="mh-trust")) == [2, 1]
    assert await ids(store, SearchFilter(patient="L12")) == [4]
    assert await ids(store, SearchFilter(patient="nobody")) == []
    async with store.engine.connect() as conn:
        assert await console_search.local_prefixes(conn, None) == [
            "local:acute::",
            "local:acute:RYY:",
            "local:mh-trust:RXX:",
            "local:mh-trust:https://fhir.example/Id/mrn:",
        ]
        assert await console_search.local_prefixes(conn, "gp-feed") == []
