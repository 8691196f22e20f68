"""Operator alerts: the pure decision (no I/O), then one check loop over a real store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from adapters.webhook import HttpResponse
from engine import alerts
from engine.alerts import AlertState, Backlog, DeadLetter, Observed, evaluate
from engine.config import AlertsConfig
from engine.delivery.http import SIGNATURE_HEADER
from engine.store import Store
from tests.console.seed import NHS, T0, accepted, deliver_all
from tests.fakes import FakeHttp, HttpRequest

CONFIG = AlertsConfig.model_validate(
    {
        "webhook": {"url": "https://alerts.example/hook", "secret": "k" * 32},
        "backlog_older_than": "15m",
        "silent_sources": {"mh-trust": "30m"},
    }
)


def keys(found: list[alerts.Alert]) -> list[str]:
    return [a.key for a in found]


def test_a_backlog_is_raised_once_and_cleared_when_it_drains() -> None:
    state = AlertState(Observed(backlogs={"gp": Backlog(T0, 3)}), started_at=T0)
    assert evaluate(state, CONFIG, T0 + timedelta(minutes=15)) == ([], [])
    raise_, clear = evaluate(state, CONFIG, T0 + timedelta(minutes=16))
    assert (keys(raise_), clear) == (["backlog.gp"], [])
    state.raised["backlog.gp"] = raise_[0]
    # Still old (even if the oldest delivery changes): nothing more is sent.
    state.observed = Observed(backlogs={"gp": Backlog(T0 + timedelta(minutes=1), 9)})
    assert evaluate(state, CONFIG, T0 + timedelta(minutes=20)) == ([], [])
    state.observed = Observed()
    raise_, clear = evaluate(state, CONFIG, T0 + timedelta(minutes=21))
    assert (raise_, keys(clear)) == ([], ["backlog.gp"])
    assert clear[0].idempotency_key("cleared").endswith(".cleared")


def test_each_dead_letter_is_raised_once_and_cleared_when_resolved_or_replayed() -> None:
    dead = {7: DeadLetter("team", "ev-1", 3), 12: DeadLetter("gp", "ev-2", 1)}
    state = AlertState(Observed(dead_letters=dead), started_at=T0)
    raise_, _ = evaluate(state, CONFIG, T0)
    assert keys(raise_) == ["dead_letter.7", "dead_letter.12"]
    state.raised = {a.key: a for a in raise_}
    state.observed = Observed(dead_letters={12: dead[12]})
    assert keys(evaluate(state, CONFIG, T0)[1]) == ["dead_letter.7"]
    # Dead again after a replay: a new episode, a new idempotency key.
    again = AlertState(Observed(dead_letters={7: DeadLetter("team", "ev-1", 6)}))
    first = raise_[0].idempotency_key("raised")
    assert evaluate(again, CONFIG, T0)[0][0].idempotency_key("raised") != first


def test_a_silent_source_counts_from_its_last_message_or_from_the_start() -> None:
    never = AlertState(Observed(last_received={"mh-trust": None}), started_at=T0)
    assert evaluate(never, CONFIG, T0 + timedelta(minutes=29)) == ([], [])
    assert keys(evaluate(never, CONFIG, T0 + timedelta(minutes=31))[0]) == [
        "silent_source.mh-trust"
    ]
    heard = AlertState(Observed(last_received={"mh-trust": T0 + timedelta(hours=1)}), started_at=T0)
    assert evaluate(heard, CONFIG, T0 + timedelta(minutes=70)) == ([], [])
    raise_, _ = evaluate(heard, CONFIG, T0 + timedelta(minutes=95))
    assert raise_[0].facts["silent_for_seconds"] == 35 * 60


def test_disabled_conditions_clear_and_a_burst_is_spread_over_checks() -> None:
    many = {i: DeadLetter("gp", f"ev-{i}", 1) for i in range(1, 251)}
    state = AlertState(Observed(dead_letters=many), started_at=T0)
    raise_, _ = evaluate(state, CONFIG, T0)
    assert keys(raise_)[:3] == ["dead_letter.1", "dead_letter.2", "dead_letter.3"]
    assert len(raise_) == 100
    state.raised = {a.key: a for a in raise_}
    quiet = CONFIG.model_copy(update={"dead_letters": False})
    raise_, clear = evaluate(state, quiet, T0)
    assert (raise_, len(clear)) == ([], 100)


def test_alerts_carry_no_patient_data() -> None:
    state = AlertState(
        Observed(
            backlogs={"gp": Backlog(T0, 1)},
            dead_letters={1: DeadLetter("gp", "ev-1", 1)},
            last_received={"mh-trust": None},
        ),
        started_at=T0,
    )
    raise_, _ = evaluate(state, CONFIG, T0 + timedelta(days=1))
    for alert in raise_:
        text = orjson.dumps(alert.body("raised", T0)).decode()
        assert NHS not in text
        assert "nhs:" not in text
        assert "SMITH" not in text


# ---- the loop over a real store -----------------------------------------------------------


@dataclass
class AlertReceiver:
    """The operator's alert webhook, behind `FakeHttp` (held to `WebhookClient.post`'s contract
    by tests/contract/test_http_destination.py): answers `status`, keeps what it accepted."""

    status: int = 200
    sent: list[tuple[dict[str, object], Mapping[str, str]]] = field(default_factory=list)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        assert request.url == "https://alerts.example/hook"
        if self.status == 200:
            self.sent.append((orjson.loads(request.body), request.headers))
        return HttpResponse(self.status, b"")


@pytest.mark.integration
async def test_check_raises_dead_letters_and_backlog_once_then_clears(store: Store) -> None:
    await store.record_intake([accepted("m1"), accepted("m2")])
    await deliver_all(store, dead=frozenset({"team"}))
    await store.record_intake([accepted("m3", destinations=("gp",))])
    now = datetime.now(UTC)
    hook = AlertReceiver()
    post = FakeHttp(hook).post
    state = alerts.AlertState(Observed(), started_at=now)
    later = now + timedelta(minutes=20)
    assert await alerts.check(store, CONFIG, post, state, later) == (4, 0)
    sent = sorted(str(body["alert"]) for body, _ in hook.sent)
    # The seed's messages were received long ago (T0): the source is silent too.
    assert sent == ["backlog.gp", "dead_letter.2", "dead_letter.4", "silent_source.mh-trust"]
    _body, headers = hook.sent[0]
    assert headers["Idempotency-Key"].startswith("carebridge.alert.")
    assert headers[SIGNATURE_HEADER].startswith("t=")
    assert NHS not in orjson.dumps([b for b, _ in hook.sent]).decode()
    assert await alerts.check(store, CONFIG, post, state, later) == (0, 0)
    # The webhook is down: nothing is marked, the next check tries again.
    await deliver_all(store)
    hook.status = 503
    with pytest.raises(alerts.AlertRefused):
        await alerts.check(store, CONFIG, post, state, later)
    hook.status = 200
    assert await alerts.check(store, CONFIG, post, state, later) == (0, 1)
    assert hook.sent[-1][0]["state"] == "cleared"
    assert hook.sent[-1][0]["alert"] == "backlog.gp"


@pytest.mark.integration
async def test_run_stops_when_asked(store: Store) -> None:
    hook = AlertReceiver()
    stopping = asyncio.Event()
    task = asyncio.create_task(alerts.run(store, CONFIG, FakeHttp(hook).post, stopping))
    await asyncio.sleep(0.1)
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert hook.sent == []
