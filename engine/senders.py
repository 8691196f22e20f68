"""Part of the composition root: each destination's sender, built from its config with the
adapters it moves bytes through (`engine.app` starts the rest).

A MESH destination's mailbox (`adapters.mesh.MeshMailbox`) is shared by its sender and by the
watch that reads its inbox for acknowledgements (`engine.mesh_inbox`), so both are returned.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from adapters.mesh import MeshMailbox, MeshSettings
from adapters.mllp import MllpClient, client_ssl_context
from adapters.oauth2 import ClientCredentials
from adapters.rabbitmq import Broker
from adapters.webhook import WebhookClient
from engine import notifications
from engine.alerts import Alert, post_alert
from engine.config import (
    AlertsConfig,
    Config,
    FhirDestination,
    MeshDestination,
    MllpDestination,
    NotificationDestination,
    TlsConfig,
    WebhookDestination,
)
from engine.delivery.amqp import AmqpSender
from engine.delivery.fhir import FhirSender
from engine.delivery.mesh import MeshSender
from engine.delivery.mllp import MllpSender
from engine.delivery.notification import NotificationSender, RoutingAlert
from engine.delivery.sending import Sender
from engine.delivery.webhook import WebhookSender
from engine.store import Store

log = structlog.get_logger("carebridge.alerts")


@dataclass
class Built:
    senders: dict[str, Sender] = field(default_factory=dict)
    mailboxes: dict[str, tuple[MeshDestination, MeshMailbox]] = field(default_factory=dict)
    """Each MESH destination's config and mailbox, by destination name."""


def mesh_mailbox(dest: MeshDestination) -> MeshMailbox:
    tls = dest.tls
    return MeshMailbox(MeshSettings(
        url=dest.url, mailbox=dest.mailbox, password=dest.password, shared_key=dest.shared_key,
        cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
        key_file=str(tls.key_file) if tls and tls.key_file else None,
        ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        verify=tls.verify if tls else True, timeout=dest.timeout.total_seconds(),
    ))  # fmt: skip


def build_senders(
    config: Config, webhook: WebhookClient, publisher: Broker, stack: AsyncExitStack, store: Store
) -> Built:
    async def publish(exchange: str, routing_key: str, body: bytes, headers: Mapping[str, str],
                      message_id: str, mandatory: bool) -> None:  # fmt: skip
        await publisher.publish(exchange, routing_key, body, headers=dict(headers),
                                message_id=message_id, content_type="application/json",
                                mandatory=mandatory)  # fmt: skip

    built = Built()
    senders = built.senders
    original = notifications.original_loader(store)
    for dest in config.destinations:
        if isinstance(dest, WebhookDestination):
            senders[dest.name] = WebhookSender(dest, webhook.post)
        elif isinstance(dest, NotificationDestination):
            senders[dest.name] = NotificationSender(
                dest, webhook.post, config.follow_up_rules, original,
                camhs_functions=config.transitions.camhs_treatment_functions,
                practice_icbs=config.transitions.practice_icbs,
                alert=_routing_alert(config.alerts, webhook),
                issue=notifications.link_issuer(store),
            )  # fmt: skip
        elif isinstance(dest, FhirDestination):
            senders[dest.name] = FhirSender(dest, webhook.post, _oauth2(dest, webhook))
        elif isinstance(dest, MllpDestination):
            link = MllpClient(
                dest.host, dest.port, timeout=dest.timeout.total_seconds(),
                ssl_context=_client_tls(dest.tls),
                server_hostname=dest.tls.server_hostname if dest.tls else None,
            )  # fmt: skip
            stack.push_async_callback(link.close)
            senders[dest.name] = MllpSender(dest, link)
        elif isinstance(dest, MeshDestination):
            mailbox = mesh_mailbox(dest)
            built.mailboxes[dest.name] = (dest, mailbox)
            senders[dest.name] = MeshSender(dest, mailbox, store, config.follow_up_rules, original)
        else:
            senders[dest.name] = AmqpSender(dest, publish)
    return built


def _routing_alert(alerts: AlertsConfig | None, webhook: WebhookClient) -> RoutingAlert:
    """A notification's routing alert: to the alert webhook when `alerts` is set, and the log.
    Its Idempotency-Key is the event's, so a resend raises the same alert."""

    async def raise_alert(key: str, facts: Mapping[str, str | int]) -> None:
        episode = key.partition(".")[2]
        alert = Alert(key, "out_of_area_default", episode, dict(facts))
        log.error("alert.raised", alert=key, condition=alert.condition)
        if alerts is not None:
            await post_alert(webhook.post, alerts.webhook, alert, "raised", datetime.now(UTC))

    return raise_alert


def _oauth2(dest: FhirDestination, webhook: WebhookClient) -> ClientCredentials | None:
    oauth = dest.oauth2
    if oauth is None:
        return None
    return ClientCredentials(
        webhook.post,
        token_url=oauth.token_url,
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        scope=oauth.scope,
    )


def _client_tls(tls: TlsConfig | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    context = client_ssl_context(
        str(tls.ca_file) if tls.ca_file else None,
        str(tls.cert_file) if tls.cert_file else None,
        str(tls.key_file) if tls.key_file else None,
        check_hostname=tls.verify,
    )
    if not tls.verify:
        context.verify_mode = ssl.CERT_NONE
    return context
