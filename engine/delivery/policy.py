"""What follows from a destination's answer: delivered, rescheduled (when) or dead-lettered (why).

Pure functions of the retry policy, the attempts so far and the last `SendResult`; the loop
(`engine.delivery.loop`) records what they decide.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from engine.config import RetryPolicy
from engine.delivery.sending import SendResult
from engine.readable import duration
from engine.store import (
    AttemptRecord,
    ClaimedDelivery,
    DeadLettered,
    Delivered,
    DeliveryOutcome,
    Rescheduled,
)

MAX_RETRY_AFTER = 86400.0


def backoff(policy: RetryPolicy, attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `attempts` tries: exponential per round of quick tries, capped,
    with +/- `jitter` so that deliveries failed by one outage do not all return at once."""
    rounds = max(1, math.ceil(attempts / policy.quick_attempts))
    base = policy.initial_backoff.total_seconds() * policy.multiplier ** (rounds - 1)
    delay = min(policy.max_backoff.total_seconds(), base)
    return max(0.0, delay * (1 + policy.jitter * (2 * rng() - 1)))


def decide(
    policy: RetryPolicy,
    claimed: ClaimedDelivery,
    tries: list[AttemptRecord],
    last: SendResult,
    *,
    hold: bool,
    now: datetime,
    rng: Callable[[], float] = random.random,
) -> DeliveryOutcome:
    """What follows from the last answer, the attempts so far and the destination's policy."""
    if last.outcome == "delivered":
        return Delivered(now)
    detail = last.detail or (f"HTTP {last.status_code}" if last.status_code else "failed")
    if last.outcome == "permanent":
        code = f"HTTP {last.status_code}: " if last.status_code else ""
        return DeadLettered(f"refused by the destination: {code}{detail}", hold=hold)
    total = claimed.attempts + len(tries)
    if policy.max_attempts is not None and total >= policy.max_attempts:
        return DeadLettered(f"gave up after {total} attempts: {detail}", hold=hold)
    age = now - claimed.created_at
    if policy.max_age is not None and age >= policy.max_age:
        return DeadLettered(f"gave up after {duration(age)} pending: {detail}", hold=hold)
    wait = backoff(policy, total, rng)
    if last.retry_after is not None:  # the destination said when: never sooner, capped at a day
        wait = max(wait, min(last.retry_after, MAX_RETRY_AFTER))
    return Rescheduled(now + timedelta(seconds=wait), detail)
