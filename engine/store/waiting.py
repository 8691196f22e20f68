"""The one "wait until the store answers" policy, for every caller that must not give up.

A message at the broker, or a delivery outcome in memory, is safe while the store is away: the
caller waits, backing off from 0.2 s to at most 10 s between tries, for as long as it takes.
Only content the store refused (`StoreRefused`) is raised at once, for the caller to isolate.

An error that is not the store's (`StoreError`) is a fault in the engine itself (a bug, a driver
error nothing translated): it is retried the same way, since the message is safe at the broker
meanwhile, but logged at critical level with `unexpected: true`, so that it does not read as an
outage of the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from engine.store.errors import StoreError, StoreRefused


def _describe(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return exc.cause_name if isinstance(exc, StoreError) else type(exc).__name__


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, StoreRefused)


def until_the_store_answers(
    *,
    log: Any = None,
    event: str = "store_unavailable",
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncRetrying:
    """Retry any exception but refused content until it succeeds (a cancellation is not
    retried: it is raised as it came); each wait logged as `event`
    on `log` (a structlog logger) when given, with the attempt number and the error's type."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is None or isinstance(error, StoreError):
            log.error(event, attempt=state.attempt_number, error=_describe(error))
        else:  # not the store's: the engine's own fault, which waiting may not mend
            log.critical(
                event, attempt=state.attempt_number, error=_describe(error), unexpected=True
            )

    options: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    return AsyncRetrying(
        wait=wait_exponential(multiplier=0.2, max=10),
        # Exceptions only: a cancellation (shutdown) goes through at once, never retried.
        retry=retry_if_exception(_worth_retrying),
        before_sleep=None if log is None else before_sleep,
        reraise=True,
        **options,
    )
