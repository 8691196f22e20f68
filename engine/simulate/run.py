"""`carebridge simulate`: generate journeys, write the messages and the ground truth, send them
to a running engine over RabbitMQ or MLLP, and with `--verify` serve the destinations and print
the verdict.

Exit codes: 0 sent (and, with --verify, every destination received exactly what it should);
1 a defect was found, or sending failed; 2 usage (a broken pathway file, a config that points a
destination away from this machine).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from adapters.errors import BrokerUnavailable, PublishReturned, TransportError
from adapters.mllp import MllpClient
from adapters.rabbitmq import INBOUND_EXCHANGE, AmqpSettings, Broker
from engine.config import Config
from engine.delivery.mllp import mllp_control_id
from engine.simulate.fhir import as_fhir
from engine.simulate.journeys import journeys
from engine.simulate.messages import SimMessage, messages
from engine.simulate.pathways import Pathway
from engine.simulate.receivers import Receivers, plan_for
from engine.simulate.truth import Expected, ground_truth, write_truth
from engine.simulate.verdict import table, verdict
from engine.store import idempotency_key
from mappings.errors import MappingError
from mappings.hl7v2.ack import parse_ack


@dataclass(frozen=True, slots=True)
class Options:
    config: Config
    pathways: list[Pathway]
    patients: int = 20
    seed: int = 1
    start: datetime | None = None
    days: float = 7.0
    messy: float = 0.2
    invalid: float = 0.02
    via: str = "amqp"
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    rate: float = 100.0
    speed: float | None = None
    """Simulated seconds per wall-clock second; None sends as fast as `rate` allows."""
    out: Path | None = None
    verify: bool = False
    timeout: float = 120.0


def generate(options: Options, now: datetime) -> tuple[list[SimMessage], list[Expected]]:
    """The messages in the order they are sent, and the ground truth of each."""
    start = options.start or now - timedelta(days=options.days)
    drawn = journeys(options.pathways, patients=options.patients, seed=options.seed,
                     start=start, window=timedelta(days=options.days))  # fmt: skip
    events = sorted((e for j in drawn for e in j), key=lambda e: (e.at, e.journey, e.index))
    sent = messages(events, seed=options.seed, messy_share=options.messy,
                    invalid_share=options.invalid)  # fmt: skip
    if options.via == "fhir":
        rng = random.Random(options.seed)
        sent = [as_fhir(message, rng) for message in sent]
    return sent, ground_truth(options.config, sent)


def write_out(folder: Path, sent: list[SimMessage], truth: list[Expected]) -> None:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    for n, message in enumerate(sent):
        suffix = "json" if message.payload.lstrip()[:1] in (b"{", b"[") else "hl7"
        (folder / "messages" / f"{n:06d}-{message.source}.{suffix}").write_bytes(message.payload)
    write_truth(truth, folder / "truth.jsonl")


class _Pace:
    """Sends no faster than `rate`, and with `speed`, no sooner than simulated time allows."""

    def __init__(self, options: Options, first: datetime | None) -> None:
        self._interval = 1.0 / options.rate if options.rate > 0 else 0.0
        self._speed = options.speed
        self._first = first
        self._t0 = time.monotonic()
        self._next = self._t0

    async def wait(self, at: datetime | None) -> None:
        due = self._next
        if self._speed and at is not None and self._first is not None:
            due = max(due, self._t0 + (at - self._first).total_seconds() / self._speed)
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._next = max(due, time.monotonic()) + self._interval


async def send_amqp(options: Options, sent: list[SimMessage]) -> int:
    broker = Broker(AmqpSettings(url=options.amqp_url, connection_name="carebridge-simulate"))
    try:
        await broker.start(timeout=10)
    except BrokerUnavailable as exc:
        print(f"carebridge: cannot reach RabbitMQ: {exc}", file=sys.stderr)
        return 1
    pace = _Pace(options, sent[0].event.at if sent and sent[0].event else None)
    try:
        for message in sent:
            await pace.wait(message.event.at if message.event else None)
            await broker.publish(INBOUND_EXCHANGE, message.source, message.payload,
                                 headers={"source": message.source})  # fmt: skip
    except PublishReturned:
        print("carebridge: a source has no inbound queue (is the engine running with this "
              "config?)", file=sys.stderr)  # fmt: skip
        return 1
    except TransportError as exc:
        print(f"carebridge: RabbitMQ refused a message: {exc}", file=sys.stderr)
        return 1
    finally:
        await broker.close()
    return 0


async def send_mllp(options: Options, sent: list[SimMessage]) -> int:
    """Each source's messages to its MLLP listener; invalid inputs must be answered AE/AR."""
    links: dict[str, MllpClient] = {}
    for source in {m.source for m in sent}:
        listener = (found := options.config.source(source)) and found.mllp
        if not listener:
            print(f"carebridge: source {source} has no MLLP listener in the config",
                  file=sys.stderr)  # fmt: skip
            return 1
        links[source] = MllpClient(listener.host, listener.port, timeout=30.0)
    wrong = 0
    pace = _Pace(options, sent[0].event.at if sent and sent[0].event else None)
    try:
        for message in sent:
            await pace.wait(message.event.at if message.event else None)
            answer = await links[message.source].send(message.payload)
            wrong += _ack_wrong(message, answer)
    except TransportError as exc:
        print(f"carebridge: MLLP: {exc}", file=sys.stderr)
        return 1
    finally:
        for link in links.values():
            await link.close()
    if wrong:
        print(f"carebridge: {wrong} MLLP acknowledgements were not what the input deserved",
              file=sys.stderr)  # fmt: skip
    return 1 if wrong else 0


async def send_fhir(options: Options, sent: list[SimMessage]) -> int:
    """Each message to `POST /fhir/{source}` with the source's first bearer token; a valid one
    must be answered 202, one that must be rejected 400 or 422."""
    listener = options.config.fhir_http
    if listener is None:
        print("carebridge: the config has no fhir_http listener", file=sys.stderr)
        return 1
    scheme = "https" if listener.tls else "http"
    base = f"{scheme}://{listener.host}:{listener.port}/fhir"
    pace = _Pace(options, sent[0].event.at if sent and sent[0].event else None)
    wrong = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for message in sent:
            source = options.config.source(message.source)
            tokens = source.fhir.tokens if source and source.fhir else []
            if not tokens:
                print(f"carebridge: source {message.source} takes no FHIR bearer token",
                      file=sys.stderr)  # fmt: skip
                return 1
            await pace.wait(message.event.at if message.event else None)
            headers = {"Authorization": f"Bearer {tokens[0]}",
                       "Content-Type": "application/fhir+json"}  # fmt: skip
            try:
                async with session.post(f"{base}/{message.source}", data=message.payload,
                                        headers=headers) as answer:  # fmt: skip
                    await answer.read()
                    wrong += (answer.status == 202) != (message.event is not None)
            except aiohttp.ClientError as exc:
                print(f"carebridge: FHIR: {exc}", file=sys.stderr)
                return 1
    if wrong:
        print(f"carebridge: {wrong} FHIR answers were not what the input deserved",
              file=sys.stderr)  # fmt: skip
    return 1 if wrong else 0


def _ack_wrong(message: SimMessage, answer: bytes) -> int:
    try:
        code = parse_ack(answer).code
    except MappingError:
        return 1
    return int((code in ("AA", "CA")) != (message.event is not None))


async def _await_receipts(receivers: Receivers, truth: list[Expected], seconds: float) -> None:
    wanted = {(d, t.event_id) for t in truth for d in t.receipts}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = {(r.destination, r.event_id) for r in receivers.receipts}
        if wanted <= got:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # a late repeat still counts


def _mllp_ids(truth: list[Expected]) -> dict[str, str]:
    return {
        mllp_control_id(idempotency_key(str(t.event_id), d)): str(t.event_id)
        for t in truth
        for d in t.receipts
    }


async def simulate(options: Options, now: datetime) -> int:
    sent, truth = generate(options, now)
    if options.out is not None:
        write_out(options.out, sent, truth)
    print(f"{len(sent)} messages for {options.patients} patients "
          f"({sum(m.event is None for m in sent)} that must be rejected)")  # fmt: skip
    receivers = None
    if options.verify:
        receivers = Receivers(plan_for(options.config), _mllp_ids(truth).get)
        await receivers.start()
    try:
        send = {"mllp": send_mllp, "fhir": send_fhir}.get(options.via, send_amqp)
        if (code := await send(options, sent)) != 0:
            return code
        if receivers is None:
            return 0
        await _await_receipts(receivers, truth, options.timeout)
        verdicts = verdict(truth, receivers.receipts, plan_for(options.config).destinations)
    finally:
        if receivers is not None:
            await receivers.stop()
    print(table(verdicts))
    defects = sum(v.defects for v in verdicts)
    print("verdict: " + ("every destination received exactly what it should" if not defects
                         else f"{defects} defects"))  # fmt: skip
    return 1 if defects else 0
