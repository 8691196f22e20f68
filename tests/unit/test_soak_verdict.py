"""The soak bench's instrument can fail: its receiver sees repeats, a second key for one message
and a patient's events out of order; its verdict tells a lost message from one not yet drained;
its RSS slope sees growth inside each engine's life even when restarts hide it overall."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import aiohttp
import orjson

from bench.soak_kit import PacedPublisher, SoakReceiver, parse_cid
from bench.soak_report import memory, verdict


@dataclass
class _Sample:
    t_min: float
    engine_run: int
    rss_mb: float
    fds: int = 20


async def _post(session: aiohttp.ClientSession, url: str, cid: str, key: str) -> int:
    body = orjson.dumps({"source": {"message_id": cid}})
    async with session.post(url, data=body, headers={"Idempotency-Key": key}) as response:
        return response.status


async def test_the_receiver_counts_repeats_new_keys_reorders_and_refusals() -> None:
    receiver = SoakReceiver()
    await receiver.start()
    try:
        async with aiohttp.ClientSession() as session:
            sends = [("S1-00001-000002", "k2"), ("S1-00001-000001", "k1"),  # out of order
                     ("S1-00001-000002", "k2"),  # a repeat of the same key
                     ("S1-00001-000002", "other"),  # the same message under a second key
                     ("S1-00002-000001", "k3")]  # fmt: skip
            statuses = [await _post(session, receiver.url, cid, key) for cid, key in sends]
            receiver.refuse_until = time.monotonic() + 60
            statuses.append(await _post(session, receiver.url, "S1-00003-000001", "k4"))
    finally:
        await receiver.stop()
    assert statuses == [200, 200, 200, 200, 200, 503]
    assert set(receiver.first) == {"S1-00001-000002", "S1-00001-000001", "S1-00002-000001"}
    assert [key for _, key in receiver.repeat_at] == ["k2"]
    assert receiver.new_key_same_cid == 1
    assert receiver.reorders == ["S1-00001-000001 after step 2"]
    assert receiver.refused == 1


def test_control_ids_parse_to_patient_and_step() -> None:
    assert parse_cid("Sab12-00042-000007") == (42, 7)
    assert parse_cid("not-ours") is None


def _args(minutes: float = 30.0) -> argparse.Namespace:
    return argparse.Namespace(minutes=minutes)


def test_a_message_never_received_is_lost_unless_still_pending_or_queued() -> None:
    publisher = PacedPublisher(broker=None, source="s", rate=1.0)  # type: ignore[arg-type]
    receiver = SoakReceiver()
    for cid in ("a", "b", "c", "d", "e", "f"):
        publisher.confirmed[cid] = 0.0
    receiver.first.update({"a": 1.0, "b": 1.0})
    left = {
        "queue_ready_after_stop": 1,
        # c pending, d marked delivered yet never received, e and f never reached the store
        # while only one message is left in the queue
        "never_received_by_status": {"pending": 1, "delivered": 1, "absent": 2},
    }
    v = verdict(_args(), publisher, receiver, [], [], 0.0, left)
    assert (v["never_received"], v["lost"], v["undrained"]) == (4, 2, 2)


def test_rss_growth_inside_each_life_shows_though_restarts_hide_it_overall() -> None:
    # three lives of 10 minutes, each growing 1 MB/min from 100 MB
    leaking = [_Sample(t, 1 + t // 10, 100 + t % 10) for t in range(30)]
    flat = [_Sample(t, 1 + t // 10, 100.0) for t in range(30)]
    leak, steady = memory(leaking, 30), memory(flat, 30)
    assert leak["rss_slope_within_lives_mb_per_min"] == 1.0
    assert abs(leak["rss_slope_mb_per_min"]) < 0.1
    assert steady["rss_slope_within_lives_mb_per_min"] == 0.0
    assert steady["rss_slope_mb_per_min"] == 0.0
