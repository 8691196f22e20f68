"""HL7v2 over MLLP destinations: the care event as an ADT message with a stable MSH-10, and how
the receiver's ACK counts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from adapters.errors import DestinationError, DestinationTimeout
from engine.config import MllpDestination
from engine.delivery.sending import (
    DETAIL_LIMIT,
    Outgoing,
    Rendered,
    SendResult,
    Unrenderable,
    care_event,
    unrenderable,
)
from engine.store import ClaimedDelivery
from mappings.errors import MappingError
from mappings.hl7v2.ack import parse_ack
from mappings.hl7v2.outbound import render_adt


class MllpLink(Protocol):
    """One MLLP connection to a destination (adapters.mllp.MllpClient)."""

    async def send(self, message: bytes) -> bytes: ...

    async def close(self) -> None: ...


def mllp_control_id(idempotency_key: str) -> str:
    """A stable MSH-10 for one delivery, within ITK's 20 characters: every attempt of the same
    delivery carries the same id, so the receiver can drop a repeat."""
    return "CB" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:18].upper()


def render_mllp(delivery: Outgoing, config: MllpDestination, now: datetime) -> Rendered:
    """The HL7v2 ADT message (unframed) with MSH-10 from the delivery's idempotency key."""
    event = care_event(delivery.body)
    try:
        message = render_adt(
            event, control_id=mllp_control_id(delivery.idempotency_key),
            sending_app=config.sending_application, sending_facility=config.sending_facility,
            receiving_app=config.receiving_application,
            receiving_facility=config.receiving_facility, now=now, version=config.version,
        )  # fmt: skip
    except MappingError as exc:
        raise Unrenderable(f"cannot be sent as HL7v2: {exc}") from exc
    return Rendered(message)


class MllpSender:
    """Renders the care event as HL7v2 ADT, sends it over MLLP and reads the ACK.

    AA/CA is delivered. AE/CE, AR/CR and silence (timeout, failed connection) are classified by
    the destination's `ack` policy. An ACK whose MSA-2 is not this message's control id means
    the link is out of step: the connection is dropped and the delivery retried.
    """

    def __init__(self, config: MllpDestination, link: MllpLink,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self._config = config
        self._link = link
        self._clock = clock

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        config = self._config
        try:
            rendered = render_mllp(delivery, config, self._clock())
        except Unrenderable as exc:
            return unrenderable(exc)
        try:
            answer = await self._link.send(rendered.body)
        except DestinationTimeout:
            return SendResult(config.ack.silence, detail="no ACK within the timeout")
        except DestinationError as exc:
            return SendResult(config.ack.silence, detail=f"not reached: {exc}"[:DETAIL_LIMIT])
        return await self._acknowledged(answer, mllp_control_id(delivery.idempotency_key))

    async def _acknowledged(self, answer: bytes, control_id: str) -> SendResult:
        try:
            ack = parse_ack(answer)
        except MappingError as exc:
            await self._link.close()
            return SendResult("transient", detail=f"unreadable answer: {exc}"[:DETAIL_LIMIT])
        if ack.control_id != control_id:
            await self._link.close()
            return SendResult("transient", detail="ACK names another message (MSA-2 mismatch)")
        detail = f"{ack.code}: {ack.text}"[:DETAIL_LIMIT] if ack.text else ack.code
        if ack.code in ("AA", "CA"):
            return SendResult("delivered", detail=detail)
        policy = self._config.ack
        return SendResult(policy.AE if ack.code in ("AE", "CE") else policy.AR, detail=detail)
