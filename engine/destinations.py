"""Moved to `engine.delivery` (one module per destination type): these names stay importable
from here until the branches that still import them have landed."""

from engine.delivery.amqp import AmqpSender, PublishFn
from engine.delivery.fhir import FhirSender, TokenSource
from engine.delivery.http import (
    SIGNATURE_HEADER,
    HttpAnswer,
    PostFn,
    classify_http,
    post_signed_json,
    retry_after,
    sign,
)
from engine.delivery.mllp import MllpLink, MllpSender, mllp_control_id
from engine.delivery.sending import Outcome, Sender, SendResult, event_headers
from engine.delivery.webhook import WebhookSender

__all__ = [
    "SIGNATURE_HEADER",
    "AmqpSender",
    "FhirSender",
    "HttpAnswer",
    "MllpLink",
    "MllpSender",
    "Outcome",
    "PostFn",
    "PublishFn",
    "SendResult",
    "Sender",
    "TokenSource",
    "WebhookSender",
    "classify_http",
    "event_headers",
    "mllp_control_id",
    "post_signed_json",
    "retry_after",
    "sign",
]
