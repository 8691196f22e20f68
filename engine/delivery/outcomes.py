"""The delivery loop's outcome writer: finished deliveries recorded in batches, one transaction
(one commit, one fsync) for whatever finished meanwhile, retried until the store answers.

The store records each outcome only while its guard holds (engine/store/outcomes.py), so a
retry after a lost answer records nothing twice; each delivery learns whether its outcome was
recorded, or which guard refused it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from engine import logs
from engine.store import (
    AttemptRecord,
    ClaimedDelivery,
    DeliveryOutcome,
    OutcomeRefused,
    Store,
    until_the_store_answers,
)

log = structlog.get_logger("carebridge.delivery")

_Item = tuple[ClaimedDelivery, list[AttemptRecord], DeliveryOutcome]


class OutcomeWriter:
    def __init__(self, store: Store, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._store = store
        self._sleep = sleep
        self._outcomes: asyncio.Queue[tuple[_Item, asyncio.Future[OutcomeRefused | None]]] = (
            asyncio.Queue()
        )
        self._writer: asyncio.Task[None] | None = None

    async def record(
        self, claimed: ClaimedDelivery, tries: list[AttemptRecord], outcome: DeliveryOutcome
    ) -> OutcomeRefused | None:
        """Record the outcome and wait until it is recorded: None, or the guard that refused it
        (nothing of it was written)."""
        if self._writer is None or self._writer.done():
            # Started from a delivery's task: in a context of its own, so that its log lines
            # do not carry that delivery's identifiers.
            self._writer = asyncio.create_task(
                self._write_outcomes(), name="delivery-outcomes", context=logs.outside_delivery()
            )
        recorded: asyncio.Future[OutcomeRefused | None]
        recorded = asyncio.get_running_loop().create_future()
        self._outcomes.put_nowait(((claimed, tries, outcome), recorded))
        return await recorded

    async def close(self) -> None:
        """Shutdown: the outcomes already queued still go in, for up to 5 seconds."""
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outcomes.join(), timeout=5)
            self._writer.cancel()

    async def _write_outcomes(self) -> None:
        """Record finished deliveries in batches; if the store is down, keep trying (the lease
        protects each row, and if it runs out another worker resends under the same key)."""
        while True:
            batch = [await self._outcomes.get()]
            while not self._outcomes.empty():
                batch.append(self._outcomes.get_nowait())
            retrying = until_the_store_answers(
                log=log, event="delivery.store_unavailable", sleep=self._sleep
            )
            error: BaseException | None = None
            refused: list[OutcomeRefused | None] = []
            try:
                async for attempt in retrying:
                    with attempt:
                        refused = await self._store.finish_deliveries([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - reported to each waiting delivery
                error = exc
            for at, (_, recorded) in enumerate(batch):
                if not recorded.done():
                    if error is None:
                        recorded.set_result(refused[at])
                    else:
                        recorded.set_exception(error)
                self._outcomes.task_done()
