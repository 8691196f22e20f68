"""A MESH destination's own inbox: the ITK3 acknowledgements that close the loop, and the MESH
alerts (docs/mesh.md).

Every `inbox_poll_interval`, for each message waiting in the trust's mailbox:

    retrieve ─► read (mappings.itk3.read_response) ─► record, with what it does (one
    transaction: engine.store.mesh) ─► acknowledge on MESH

An acknowledgement is matched to its delivery by the ITK3 message id it answers. A negative one
dead-letters the delivery with its reason; a positive business one acknowledges the follow-up.
A message that is not an ITK3 response, or answers none of ours, is kept raw with the reason
(the console lists it) and acknowledged all the same, so it neither loops nor is lost. Then the
alerts: a practice with no mailbox, an upload with no business acknowledgement in
`business_ack_within`; each raised once (alert webhook and log).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from adapters.errors import TransportError
from engine.alerts import Alert, Condition, post_alert
from engine.config import AlertsConfig, MeshDestination
from engine.delivery.http import PostFn
from engine.store import Store, StoreError
from engine.store.mesh import AckRecord, InboxRecord, MeshAlertDue
from mappings.itk3 import XmlError, read_response

log = structlog.get_logger("carebridge.mesh")


class Received(Protocol):
    """One inbox message as the mailbox adapter reads it (adapters.mesh.InboxMessage)."""

    @property
    def message_id(self) -> str: ...
    @property
    def sender(self) -> str | None: ...
    @property
    def workflow_id(self) -> str | None: ...
    @property
    def local_id(self) -> str | None: ...
    @property
    def body(self) -> bytes: ...
    @property
    def truncated(self) -> bool: ...


class Inbox(Protocol):
    async def inbox(self, limit: int = 500) -> list[str]: ...

    async def retrieve(self, message_id: str) -> Received: ...

    async def acknowledge(self, message_id: str) -> None: ...


@dataclass
class Polled:
    read: int = 0
    matched: int = 0
    kept_unread: int = 0
    """Unreadable or unmatched: kept for an operator."""
    failed: int = 0


def inbox_record(dest: MeshDestination, message: Received, now: datetime) -> InboxRecord:
    """What is kept of an inbox message, with the acknowledgement it is (or why it is none)."""
    ack, reason = None, None
    if message.truncated:
        reason = "too large to read as an acknowledgement (kept truncated)"
    else:
        try:
            r = read_response(message.body)
            ack = AckRecord(r.responds_to, r.level, r.code, r.positive, r.text)
        except XmlError as exc:
            reason = f"not an ITK3 response: {exc}"
        except Exception as exc:  # noqa: BLE001 - hostile bytes never stop the watch: kept
            reason = f"could not be read ({type(exc).__name__})"
    return InboxRecord(
        message_id=message.message_id, destination=dest.name, received_at=now,
        sender=message.sender, workflow_id=message.workflow_id, local_id=message.local_id,
        payload=message.body, ack=ack, reason=reason,
    )  # fmt: skip


async def poll_once(dest: MeshDestination, inbox: Inbox, store: Store) -> Polled:
    """Read, record and acknowledge what is waiting now. A message whose retrieval or record
    fails stays on MESH, unacknowledged, for the next poll."""
    polled = Polled()
    for message_id in await inbox.inbox():
        try:
            if not await store.mesh_inbox_recorded(message_id):
                message = await inbox.retrieve(message_id)
                record = inbox_record(dest, message, datetime.now(UTC))
                outcome = await store.record_mesh_inbox(record, hold=dest.hold_on_dead_letter)
                polled.matched += outcome.status == "matched"
                polled.kept_unread += outcome.status != "matched"
                log.info("mesh.inbox_recorded", destination=dest.name, status=outcome.status,
                         delivery_id=outcome.delivery_id)  # fmt: skip
            await inbox.acknowledge(message_id)
            polled.read += 1
        except (TransportError, StoreError) as exc:
            polled.failed += 1
            log.warning("mesh.inbox_failed", destination=dest.name, error=type(exc).__name__)
    return polled


def mesh_alert(due: MeshAlertDue) -> Alert:
    """The operator alert for a MESH delivery: identifiers only (no patient data)."""
    condition: Condition = "mesh_no_mailbox" if due.no_mailbox else "mesh_business_ack_missing"
    facts: dict[str, str | int] = {
        "destination": due.destination, "delivery_id": due.delivery_id,
        "event_id": due.event_id, "workflow": due.workflow_id,
        "gp_practice": due.practice or "not recorded",
    }  # fmt: skip
    if due.uploaded_at is not None:
        facts["uploaded_at"] = due.uploaded_at.isoformat()
    return Alert(f"{condition}.{due.delivery_id}", condition, str(due.delivery_id), facts)


async def check_alerts(dest: MeshDestination, store: Store, alerts: AlertsConfig | None,
                       post: PostFn, now: datetime) -> int:  # fmt: skip
    """Raise each MESH alert due once; how many were raised."""
    within = dest.business_ack_within
    raised = 0
    for due in await store.mesh_to_alert(dest.name, now - within if within else None):
        if not await store.claim_mesh_alert(due.delivery_id):
            continue
        alert = mesh_alert(due)
        try:
            if alerts is not None:
                await post_alert(post, alerts.webhook, alert, "raised", now)
        except Exception as exc:  # noqa: BLE001 - unclaimed, to be raised at the next check
            await store.claim_mesh_alert(due.delivery_id, claimed=False)
            log.warning("mesh.alert_failed", alert=alert.key, error=type(exc).__name__)
            continue
        log.error("alert.raised", alert=alert.key, condition=alert.condition)
        raised += 1
    return raised


async def watch(dest: MeshDestination, inbox: Inbox, store: Store, alerts: AlertsConfig | None,
                post: PostFn, stopping: asyncio.Event) -> None:  # fmt: skip
    """Poll the inbox and check the alerts every `inbox_poll_interval` until `stopping`."""
    while not stopping.is_set():
        try:
            await poll_once(dest, inbox, store)
            await check_alerts(dest, store, alerts, post, datetime.now(UTC))
        except (TransportError, StoreError) as exc:
            log.warning("mesh.watch_failed", destination=dest.name, error=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - logged; the next poll tries again
            log.error("mesh.watch_crashed", destination=dest.name, error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), dest.inbox_poll_interval.total_seconds())
