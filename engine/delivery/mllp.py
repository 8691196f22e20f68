"""HL7v2 over MLLP destinations: the care event as an ADT message with a stable MSH-10, and how
the receiver's ACK counts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from adapters.errors import DestinationError, DestinationTimeout
from engine.config import MllpDestination
from engine.delivery.sending import DETAIL_LIMIT, SendResult
from engine.store import ClaimedDelivery
from mappings.errors import MappingError
from mappings.hl7v2.ack import parse_ack
from mappings.hl7v2.outbound import render_adt
from mappings.model import CareEvent


class MllpLink(Protocol):
    """One MLLP connection to a destination (adapters.mllp.MllpClient)."""

    async def send(self, message: bytes) -> bytes: ...

    async def close(self) -> None: ...


def mllp_control_id(idempotency_key: str) -> str:
    """A stable MSH-10 for one delivery, within ITK's 20 characters: every attempt of the same
    delivery carries the same id, so the receiver can drop a repeat."""
    return "CB" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:18].upper()


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
        control_id = mllp_control_id(delivery.idempotency_key)
        try:
            message = render_adt(
                CareEvent.model_validate_json(delivery.body), control_id=control_id,
                sending_app=config.sending_application, sending_facility=config.sending_facility,
                receiving_app=config.receiving_application,
                receiving_facility=config.receiving_facility, now=self._clock(),
                version=config.version,
            )  # fmt: skip
        except MappingError as exc:
            return SendResult("permanent", detail=f"cannot be sent as HL7v2: {exc}")
        try:
            answer = await self._link.send(message)
        except DestinationTimeout:
            return SendResult(config.ack.silence, detail="no ACK within the timeout")
        except DestinationError as exc:
            return SendResult(config.ack.silence, detail=f"not reached: {exc}"[:DETAIL_LIMIT])
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
        return SendResult(config.ack.AE if ack.code in ("AE", "CE") else config.ack.AR,
                          detail=detail)  # fmt: skip
