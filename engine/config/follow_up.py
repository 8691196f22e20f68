"""``follow_up:``: which discharges start a follow-up clock, and when to raise an alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field

from engine.config.alerts import AlertWebhook
from engine.config.base import Duration, Secret, Strict


class FollowUpConfig(Strict):
    """Follow-up after discharge: which discharges start a clock (rules, first match wins; the
    NHS defaults when omitted), and when to raise an alert."""

    rules: list[dict[str, Any]] | None = None
    check_interval: Duration = timedelta(seconds=60)
    unacknowledged_after: Duration = timedelta(hours=4)
    alert_webhook: AlertWebhook | None = None
    list_token: Secret | None = Field(default=None, min_length=32)
    """Bearer token for `GET /follow-ups` (only as ${ENV_NAME}); without it the list is off."""
