from datetime import UTC, datetime, timedelta

import pytest

from engine.config import RetryPolicy
from engine.delivery.http import classify_http, sign
from engine.delivery.policy import backoff, decide
from engine.delivery.sending import SendResult
from engine.store import AttemptRecord, ClaimedDelivery, DeadLettered, Delivered, Rescheduled

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def claimed(attempts: int = 0, age: timedelta = timedelta(0)) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=1,
        event_id="ev-1",
        destination="gp",
        patient_key="nhs:9434765919",
        idempotency_key="ev-1.gp",
        attempts=attempts,
        created_at=NOW - age,
        kind="discharge",
        care_setting="mental_health",
        source="mh-trust",
        body="{}",
    )


def tries(n: int) -> list[AttemptRecord]:
    return [
        AttemptRecord(started_at=NOW, duration_ms=5, outcome="transient", status_code=503)
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (408, "transient"),
        (425, "transient"),
        (429, "transient"),
        (500, "transient"),
        (503, "transient"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (422, "permanent"),
        (301, "permanent"),
    ],
)
def test_http_status_classification(status: int, outcome: str) -> None:
    assert classify_http(status) == outcome


def test_backoff_grows_per_round_and_is_capped() -> None:
    policy = RetryPolicy(
        quick_attempts=3,
        initial_backoff=timedelta(seconds=5),
        max_backoff=timedelta(seconds=60),
        jitter=0,
    )
    assert [backoff(policy, n) for n in (3, 6, 9, 12, 30)] == [5, 10, 20, 40, 60]


def test_backoff_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(initial_backoff=timedelta(seconds=10), jitter=0.2)
    assert backoff(policy, 1, rng=lambda: 0.0) == pytest.approx(8.0)
    assert backoff(policy, 1, rng=lambda: 1.0) == pytest.approx(12.0)


def test_transient_failure_is_rescheduled_with_backoff() -> None:
    policy = RetryPolicy(initial_backoff=timedelta(seconds=5), jitter=0)
    outcome = decide(
        policy, claimed(), tries(3), SendResult("transient", 503, "busy"), hold=False, now=NOW
    )
    assert outcome == Rescheduled(NOW + timedelta(seconds=5), "busy")


def test_permanent_refusal_is_dead_lettered_with_the_answer() -> None:
    outcome = decide(
        RetryPolicy(), claimed(), tries(1), SendResult("permanent", 422, "bad"), hold=True, now=NOW
    )
    assert outcome == DeadLettered("refused by the destination: HTTP 422: bad", hold=True)


def test_max_attempts_dead_letters() -> None:
    policy = RetryPolicy(max_attempts=6, max_age=None)
    outcome = decide(
        policy,
        claimed(attempts=3),
        tries(3),
        SendResult("transient", 503, "x"),
        hold=False,
        now=NOW,
    )
    assert isinstance(outcome, DeadLettered)
    assert outcome.reason == "gave up after 6 attempts: x"


def test_max_age_dead_letters() -> None:
    policy = RetryPolicy(max_age=timedelta(hours=1))
    outcome = decide(
        policy,
        claimed(age=timedelta(hours=2)),
        tries(1),
        SendResult("transient", None, "no answer within the timeout"),
        hold=False,
        now=NOW,
    )
    assert isinstance(outcome, DeadLettered)
    assert outcome.reason.startswith("gave up after 2 h pending")


def test_success_is_delivered() -> None:
    assert decide(
        RetryPolicy(), claimed(), tries(1), SendResult("delivered", 200), hold=False, now=NOW
    ) == Delivered(NOW)


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, b"{}") == f"t=1700000000,v1={expected}"
