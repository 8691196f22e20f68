"""HL7v2 over MLLP into the engine: check, publish, confirm, and only then acknowledge.

    MLLP frame ─► who may send? (client certificate name)           AR if not allowed
              ─► content check: parse + map as a dry run            error noted for AE
              ─► publish to carebridge.inbound (persistent, mandatory), wait for the confirm
              ─► AA (or AE with ERR for content errors) │ AR when the engine cannot accept

The message is published even when its content check fails, so it is kept in the message log
as rejected with its reason; the sender sees the same reason in the ERR segment. A message the
sender repeats (same MSH-10) is answered AA again; intake recognises the repeat and delivers it
once. Enhanced mode (MSH-15) gets commit acknowledgements CA/CE/CR as the sender asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from adapters.errors import TransportError
from engine.store import StoreUnavailable
from mappings.errors import MappingError
from mappings.hl7v2.ack import Outcome, ack_code, ack_mode, build_ack
from mappings.inbound import map_message
from mappings.profile import FeedProfile

log = structlog.get_logger("carebridge.mllp")

Publish = Callable[[str, bytes, Mapping[str, str]], Awaitable[None]]
"""(source, payload, headers): publish to the source's inbound queue and wait for the confirm."""


class Peer(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def client_cn(self) -> str | None: ...


@dataclass(frozen=True)
class MllpGateway:
    source: str
    profile: FeedProfile
    publish: Publish
    allowed_client_names: frozenset[str] | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def handle(self, raw: bytes, peer: Peer) -> bytes:
        """The answer to one MLLP message (b"" when the sender asked for none)."""
        now = self.clock()
        mode = ack_mode(raw)
        control_id = f"CB{now.strftime('%Y%m%d%H%M%S%f')}"

        def answer(outcome: Outcome, error: MappingError | None = None,
                   text: str | None = None) -> bytes:  # fmt: skip
            code = ack_code(mode, outcome)
            if code is None:
                return b""
            return build_ack(raw, code, now=now, control_id=control_id, error=error, text=text)

        if (
            self.allowed_client_names is not None
            and peer.client_cn not in self.allowed_client_names
        ):
            log.warning("mllp.sender_not_allowed", source=self.source, peer=peer.host)
            return answer("rejected", text="this sender is not allowed to send for this source")
        error: MappingError | None = None
        try:
            map_message(raw, self.profile)
        except MappingError as exc:
            error = exc
        try:
            await self.publish(self.source, raw, {"source": self.source, "via": "mllp",
                                                  "received_at": now.isoformat()})  # fmt: skip
        except (TransportError, StoreUnavailable) as exc:
            log.warning("mllp.not_accepted", source=self.source, error=type(exc).__name__)
            return answer("rejected", text="the engine cannot accept messages now; send again")
        if error is not None:
            log.info("mllp.content_error", source=self.source, code=error.code,
                     location=error.location)  # fmt: skip
            return answer("error", error=error)
        return answer("accepted")

    def reject_oversized(self, head: bytes, _peer: Peer) -> bytes | None:
        """A frame over the size limit: AR built from its header, if the header can be read."""
        try:
            return build_ack(head, "AR", now=self.clock(), control_id="CBOVERSIZE",
                             text="message larger than this source accepts")  # fmt: skip
        except MappingError:
            return None
