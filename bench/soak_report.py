"""The soak bench's verdict (lost, repeated, reordered; RSS slope; FD count) and its table."""

from __future__ import annotations

import argparse
import math
import sqlite3
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from bench.end_to_end import fmt, percentile
from bench.soak_kit import PacedPublisher, SoakReceiver

REPEAT_WINDOW_MIN = 2.0
"""A repeat within this many minutes after a fault is put down to that fault."""


class SampleLike(Protocol):
    t_min: float
    engine_run: int
    rss_mb: float
    fds: int


class FaultLike(Protocol):
    kind: str
    at_min: float


async def store_counts(store_url: str, keys: Sequence[str]) -> dict[str, dict[str, int]]:
    """Read after the engine stopped: deliveries by status, and the status of the deliveries
    of `keys` (those never received), `absent` for a key without a delivery row (its message
    never reached intake: it must still be in the queue)."""
    total = "SELECT status, count(*) FROM deliveries GROUP BY status"
    some = "SELECT idempotency_key, status FROM deliveries WHERE idempotency_key IN ({})"
    found: dict[str, str] = {}
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.split(":///", 1)[1]) as conn:
            counts = {str(s): int(n) for s, n in conn.execute(total).fetchall()}
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                rows = conn.execute(some.format(",".join("?" * len(chunk))), chunk).fetchall()
                found.update((str(k), str(st)) for k, st in rows)
    else:
        import asyncpg

        conn = await asyncpg.connect(store_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            counts = {str(r[0]): int(r[1]) for r in await conn.fetch(total)}
            rows = await conn.fetch(some.format("SELECT unnest($1::text[])"), list(keys))
            found.update((str(r[0]), str(r[1])) for r in rows)
        finally:
            await conn.close()
    missing = Counter(found.get(k, "absent") for k in keys)
    return {"deliveries_by_status": counts, "never_received_by_status": dict(missing)}


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return statistics.fmean(vals) if vals else math.nan


def memory(samples: Sequence[SampleLike], minutes: float) -> dict[str, Any]:
    """RSS and FDs in the first and last third of the load; the RSS slope between them, and the
    slope within each engine's life (a SIGKILL restarts the count, so a leak shows there)."""
    during = [s for s in samples if s.t_min <= minutes + 0.01 and s.fds >= 0]
    first = [s for s in during if s.t_min < minutes / 3]
    last = [s for s in during if s.t_min >= 2 * minutes / 3]
    span = _mean([s.t_min for s in last]) - _mean([s.t_min for s in first])
    rss_first, rss_last = _mean([s.rss_mb for s in first]), _mean([s.rss_mb for s in last])
    lives: dict[int, list[SampleLike]] = defaultdict(list)
    for s in during:
        lives[s.engine_run].append(s)
    sxy = sxx = 0.0
    for group in lives.values():
        if len(group) < 2:
            continue
        tbar, rbar = _mean([s.t_min for s in group]), _mean([s.rss_mb for s in group])
        sxy += sum((s.t_min - tbar) * (s.rss_mb - rbar) for s in group)
        sxx += sum((s.t_min - tbar) ** 2 for s in group)
    fds = [s.fds for s in during]
    return {
        "rss_first_third_mb": round(rss_first, 1),
        "rss_last_third_mb": round(rss_last, 1),
        "rss_slope_mb_per_min": round((rss_last - rss_first) / span, 3) if span > 0 else math.nan,
        "rss_slope_within_lives_mb_per_min": round(sxy / sxx, 3) if sxx > 0 else math.nan,
        "rss_max_mb": max((s.rss_mb for s in during), default=math.nan),
        "fds_first_third": round(_mean([s.fds for s in first]), 1),
        "fds_last_third": round(_mean([s.fds for s in last]), 1),
        "fds_min": min(fds, default=-1),
        "fds_max": max(fds, default=-1),
    }


def repeats_by_fault(
    receiver: SoakReceiver, faults: Sequence[FaultLike], t0: float
) -> dict[str, int]:
    """Repeats (arrivals of a key already received) put down to the fault before them."""
    out: Counter[str] = Counter()
    for at, _key in receiver.repeat_at:
        minute = (at - t0) / 60
        before = [f for f in faults if f.at_min <= minute]
        near = before and minute - before[-1].at_min <= REPEAT_WINDOW_MIN
        out[f"after {before[-1].kind}" if near else "no fault just before"] += 1
    return dict(out)


def verdict(
    args: argparse.Namespace,
    publisher: PacedPublisher,
    receiver: SoakReceiver,
    samples: Sequence[SampleLike],
    faults: Sequence[FaultLike],
    t0: float,
    left: dict[str, Any],
) -> dict[str, Any]:
    """Lost: never received, yet delivered or dead-lettered in the store, or neither in the store
    nor in the queue. Undrained: never received, still pending in the store or in the queue."""
    confirmed, first = publisher.confirmed, receiver.first
    missing = sorted(c for c in confirmed if c not in first)
    status = Counter(left["never_received_by_status"])
    queued = min(status["absent"], max(0, left["queue_ready_after_stop"]))
    lost = len(missing) - status["pending"] - queued
    latency = [1000 * (first[c] - at) for c, at in confirmed.items() if c in first]
    keys = Counter(k for _, k in receiver.repeat_at)
    return {
        "offered": publisher.offered,
        "published": len(confirmed),
        "received": len(first),
        "never_received": len(missing),
        "never_received_examples": missing[:10],
        "lost": lost,
        "undrained": len(missing) - lost,
        "received_never_confirmed": sum(1 for c in first if c not in confirmed),
        "repeats": len(receiver.repeat_at),
        "keys_repeated": len(keys),
        "most_arrivals_of_one_key": 1 + max(keys.values(), default=0),
        "repeats_by_fault": repeats_by_fault(receiver, faults, t0),
        "late_repeats": receiver.late_repeats,
        "new_key_for_known_message": receiver.new_key_same_cid,
        "reordered": len(receiver.reorders),
        "reorder_examples": receiver.reorders[:10],
        "refused_503": receiver.refused,
        "publish_failures": dict(publisher.failures),
        "publisher_max_lag_s": round(publisher.max_lag_s, 2),
        "latency_ms": {
            "p50": round(percentile(latency, 50), 1),
            "p99": round(percentile(latency, 99), 1),
            "max": round(max(latency, default=math.nan), 1),
        },
        "memory": memory(samples, args.minutes),
    }


def _table(samples: Sequence[dict[str, Any]]) -> list[str]:
    head = (f"  {'min':>6} {'event':<22}{'run':>3} {'RSS MB':>7}{'FDs':>5}{'thr':>4}"
            f"{'CPU%':>6}{'published':>10}{'received':>10}{'backlog':>8}{'recv/s':>8}"
            f"{'repeats':>8}{'503s':>6}{'queue':>12}{'load':>6}")  # fmt: skip
    lines = [head]
    for s in samples:
        queue = f"{s['queue_ready']}+{s['queue_unacked']}"
        lines.append(
            f"  {s['t_min']:6.2f} {s['label']:<22}{s['engine_run']:>3} {fmt(s['rss_mb'], 1):>7}"
            f"{s['fds']:>5}{s['threads']:>4}{fmt(s['engine_cpu_pct']):>6}{s['published']:>10}"
            f"{s['received']:>10}{s['backlog']:>8}{s['recv_mps']:>8.1f}{s['repeats']:>8}"
            f"{s['refused_503']:>6}{queue:>12}{s['load1']:>6.2f}"
        )
    return lines


def describe(results: dict[str, Any]) -> str:
    m, p, v = results["machine"], results["parameters"], results["verdict"]
    mem, eng = v["memory"], results["engine"]
    lines = [
        "Carebridge soak",
        f"  machine : {m['nproc']} CPU ({m['cpu_model']}), Python {m['python']}, RabbitMQ "
        f"{m['rabbitmq']}, commit {m['git_commit']}, load {m['loadavg_at_start']} at start, "
        f"{m['loadavg_at_end']} at end",
        f"  load    : {p['rate']:g} msg/s offered for {p['minutes']:g} min, {p['patients']} "
        f"patients, a fault every {p['fault_every']:g} s (503 outage {p['outage']:g} s), "
        f"store {p['store']}",
        "",
        "  faults:",
        *(
            f"    {f['at_min']:6.2f} min  {f['kind']:<17} {f['seconds']:6.2f} s  {f['detail']}"
            for f in results["faults"]
        ),
        "",
        *_table(results["samples"]),
        "",
        f"  offered {v['offered']}, published (confirmed) {v['published']}, received "
        f"{v['received']}; never received {v['never_received']}: LOST {v['lost']}, still queued"
        f" or pending (not drained in time) {v['undrained']} {v['never_received_examples'] or ''}",
        f"  drain after the load: {results['drain_s']} s; publish retries "
        f"{v['publish_failures'] or 0}; publisher max lag {v['publisher_max_lag_s']} s",
        f"  repeats (same Idempotency-Key again): {v['repeats']} arrivals of {v['keys_repeated']}"
        f" keys (at most {v['most_arrivals_of_one_key']} arrivals of one key); by fault: "
        f"{v['repeats_by_fault'] or '-'}; of an event older than the patient's latest: "
        f"{v['late_repeats']}; a known message under a new key: "
        f"{v['new_key_for_known_message']}",
        f"  per-patient order: {v['reordered']} first arrivals out of order "
        f"{v['reorder_examples'] or ''}",
        f"  503 answers given: {v['refused_503']}; publish -> first receipt p50 "
        f"{v['latency_ms']['p50']} ms, p99 {v['latency_ms']['p99']} ms, max "
        f"{v['latency_ms']['max']} ms",
        f"  RSS: first third {mem['rss_first_third_mb']} MB, last third "
        f"{mem['rss_last_third_mb']} MB, slope {mem['rss_slope_mb_per_min']} MB/min (within "
        f"each engine's life {mem['rss_slope_within_lives_mb_per_min']} MB/min), max "
        f"{mem['rss_max_mb']} MB",
        f"  FDs: first third {mem['fds_first_third']}, last third {mem['fds_last_third']}, "
        f"range {mem['fds_min']}..{mem['fds_max']}",
        f"  engine: {eng['runs']} runs, exits {eng['exit_statuses']}, log exceptions "
        f"{eng['logs']['exceptions']}, warnings/errors {eng['logs']['events'] or '-'}",
        f"  deliveries in the store at the end: {eng['deliveries_by_status']}; of those never "
        f"received: {eng['never_received_by_status'] or '-'}; queue after the engine stopped: "
        f"{eng['queue_ready_after_stop']}",
    ]
    return "\n".join(lines)
