"""MESH destinations: each discharge (or its withdrawal) to the patient's GP practice as an ITK3
Transfer of Care message, uploaded to the practice's MESH mailbox (docs/mesh.md).

    render (pure)   the ITK3 message (`mappings.itk3`), on the workflow of the care setting
    recipient       the practice's mailbox: the config's table, else MESH endpoint lookup
    record          the local id and ITK3 message id, before the upload (engine.store.mesh)
    upload          through the mailbox adapter (adapters.mesh), in a worker thread
    record          MESH's message id

The MESH local id is the delivery's idempotency key, and every id in the message is derived from
it: a resend after a crash or a lost answer is the same message, recognisable by the recipient.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from adapters.errors import DestinationError, DestinationRefused, DestinationTimeout
from engine.config import MeshDestination
from engine.delivery.sending import (
    DETAIL_LIMIT,
    Outgoing,
    SendResult,
    Unrenderable,
    care_event,
    unrenderable,
)
from engine.store import ClaimedDelivery, StoreError
from engine.store.mesh import NO_MAILBOX, MeshUpload
from mappings.clinical.follow_up import FollowUpRule
from mappings.errors import MappingError
from mappings.itk3 import Addressing, Itk3Message, render_discharge_message, workflow_for
from mappings.model import CareEvent, EventKind

log = structlog.get_logger("carebridge.mesh")
CONTENT_TYPE = "application/fhir+xml"
OriginalLoader = Callable[[str], Awaitable[CareEvent | None]]


class MeshLink(Protocol):
    """The trust's MESH mailbox (adapters.mesh.MeshMailbox)."""

    async def send(self, recipient: str, body: bytes, *, workflow_id: str, local_id: str,
                   subject: str, content_type: str) -> str: ...  # fmt: skip

    async def lookup(self, ods_code: str, workflow_id: str) -> list[str]: ...


class MeshUploads(Protocol):
    """What the sender records (engine.store.Store)."""

    async def mesh_uploading(self, upload: MeshUpload) -> None: ...

    async def mesh_uploaded(self, delivery_id: int, message_id: str, at: datetime) -> None: ...


def render_mesh(
    delivery: Outgoing, config: MeshDestination, rules: Sequence[FollowUpRule], now: datetime,
    subject: CareEvent | None = None,
) -> Itk3Message | None:  # fmt: skip
    """The ITK3 message of a delivery, None when the event sends nothing over MESH (not a
    discharge or its withdrawal, or no Transfer of Care workflow for its care setting)."""
    event = care_event(delivery.body)
    if workflow_for(event, subject) is None:
        return None
    addressing = Addressing(config.sender_ods, config.mailbox, config.recipient_type)
    try:
        return render_discharge_message(event, key=delivery.idempotency_key,
                                        addressing=addressing, now=now, rules=rules,
                                        subject=subject)  # fmt: skip
    except MappingError as exc:
        raise Unrenderable(f"cannot be sent as ITK3: {exc}") from exc


@dataclass
class Recipients:
    """A GP practice's mailbox for a workflow: the config's table first, else MESH endpoint
    lookup (each mailbox found kept for `lookup_cache`; "none" is asked again each time, so a
    mailbox registered since is found at the replay). None when the practice has none."""

    config: MeshDestination
    link: MeshLink
    clock: Callable[[], float] = time.monotonic
    _cache: dict[tuple[str, str], tuple[float, str | None]] | None = None

    async def mailbox(self, ods: str, workflow_id: str) -> str | None:
        if (table := self.config.mailboxes.get(ods.upper())) is not None:
            return table
        if not self.config.lookup:
            return None
        cache = self._cache if self._cache is not None else {}
        self._cache = cache
        key = (ods.upper(), workflow_id)
        if (hit := cache.get(key)) is not None and hit[0] > self.clock():
            return hit[1]
        found = await self.link.lookup(ods.upper(), workflow_id)  # errors: the caller's
        if not found:
            return None
        cache[key] = (self.clock() + self.config.lookup_cache.total_seconds(), found[0])
        return found[0]


class MeshSender:
    """Uploads each discharge's ITK3 message to the GP practice's mailbox.

    Delivered is MESH's taking the upload (202, a message id); the GP's acknowledgements follow
    through the inbox (engine.mesh_inbox). Transient: MESH not reached or silent (the upload may
    have arrived: the resend carries the same local id), 429, 5xx, the mailbox's credentials
    refused (401/403: retried until an operator fixes the password; the backlog alert says
    so). Permanent: no GP practice or no mailbox for it, a refusal by MESH's own error codes
    (an unregistered recipient), an event that cannot be an ITK3 message.
    """

    def __init__(self, config: MeshDestination, link: MeshLink, uploads: MeshUploads,
                 rules: Sequence[FollowUpRule], original: OriginalLoader,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self._config = config
        self._link = link
        self._uploads = uploads
        self._rules = rules
        self._original = original
        self._clock = clock
        self._recipients = Recipients(config, link)

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        try:
            event = care_event(delivery.body)
            subject = await self._subject(event)
            message = render_mesh(delivery, self._config, self._rules, self._clock(), subject)
        except Unrenderable as exc:
            return unrenderable(exc)
        if message is None:
            return SendResult("delivered", detail="not a discharge for MESH: nothing sent")
        ods = (subject or event).patient.gp_practice_ods
        if not ods:
            return SendResult("permanent", detail="no GP practice on the record: no MESH recipient")
        workflow = message.workflow.workflow_id
        try:
            mailbox = await self._recipients.mailbox(ods, workflow)
        except DestinationError as exc:
            return SendResult(
                "transient", detail=f"MESH endpoint lookup failed: {exc}"[:DETAIL_LIMIT]
            )
        if mailbox is None:
            return await self._no_mailbox(delivery, message, ods)
        return await self._upload(delivery, message, mailbox, ods)

    async def _no_mailbox(
        self, delivery: ClaimedDelivery, message: Itk3Message, ods: str
    ) -> SendResult:
        """Dead-letter it, recorded so the MESH watch raises an operator alert naming the
        practice (engine.mesh_inbox)."""
        workflow = message.workflow.workflow_id
        upload = MeshUpload(delivery.id, delivery.destination, delivery.idempotency_key,
                            message.header_id, workflow, NO_MAILBOX, ods)  # fmt: skip
        try:
            await self._uploads.mesh_uploading(upload)
        except StoreError as exc:
            return SendResult("transient", detail=f"not sent: the store did not answer ({exc})")
        return SendResult("permanent", detail=f"no MESH mailbox for GP practice {ods} on "
                          f"{workflow}: add one to the destination's mailboxes")  # fmt: skip

    async def _upload(
        self, delivery: ClaimedDelivery, message: Itk3Message, mailbox: str, ods: str
    ) -> SendResult:
        workflow = message.workflow.workflow_id
        upload = MeshUpload(delivery.id, delivery.destination, delivery.idempotency_key,
                            message.header_id, workflow, mailbox, ods)  # fmt: skip
        try:
            await self._uploads.mesh_uploading(upload)
        except StoreError as exc:
            return SendResult("transient", detail=f"not sent: the store did not answer ({exc})")
        try:
            message_id = await self._link.send(
                mailbox, message.body, workflow_id=workflow, local_id=delivery.idempotency_key,
                subject=message.subject, content_type=CONTENT_TYPE,
            )  # fmt: skip
        except DestinationRefused as exc:
            return _refused(exc)
        except DestinationTimeout:
            return SendResult("transient", detail="MESH did not answer in time: the upload may "
                              "have arrived; the resend carries the same local id")  # fmt: skip
        except DestinationError as exc:
            return SendResult("transient", detail=f"MESH not reached: {exc}"[:DETAIL_LIMIT])
        try:
            await self._uploads.mesh_uploaded(delivery.id, message_id, self._clock())
        except StoreError:  # acknowledgements still match by the ITK3 message id
            log.warning("mesh.message_id_not_recorded", delivery_id=delivery.id)
        detail = f"MESH message {message_id} to {mailbox} on {workflow}"
        return SendResult("delivered", status_code=202, detail=detail)

    async def _subject(self, event: CareEvent) -> CareEvent | None:
        """For a withdrawal, the discharge it withdraws (if stored)."""
        if event.kind is EventKind.CANCEL_DISCHARGE and event.corrects_event_id:
            return await self._original(event.corrects_event_id)
        return None


def _refused(exc: DestinationRefused) -> SendResult:
    status = exc.status
    if status in (401, 403):
        return SendResult("transient", status_code=status, detail="MESH refused the mailbox's "
                          f"credentials (password, shared key or certificate): {exc.detail}"
                          [:DETAIL_LIMIT])  # fmt: skip
    if status is None or status == 429 or status >= 500 or status == 408:
        return SendResult("transient", status_code=status, detail=str(exc)[:DETAIL_LIMIT])
    return SendResult("permanent", status_code=status, detail=f"MESH: {exc.detail}"[:DETAIL_LIMIT])
