"""``follow_up:``: which discharges start a follow-up clock, and when to raise an alert."""

from __future__ import annotations

from datetime import timedelta

from pydantic import PrivateAttr, model_validator

from engine.config.alerts import AlertWebhook
from engine.config.base import Duration, Secret, Strict
from mappings.clinical.follow_up import DEFAULT_RULES, FollowUpRule, FollowUpRules


class FollowUpConfig(Strict):
    """Follow-up after discharge: which discharges start a clock (rules, first match wins; the
    NHS defaults when omitted), and when to raise an alert."""

    rules: FollowUpRules | None = None
    """The rules in order, first match wins (see `FollowUpRuleSettings`); null: the defaults."""
    check_interval: Duration = timedelta(seconds=60)
    unacknowledged_after: Duration = timedelta(hours=4)
    alert_webhook: AlertWebhook | None = None
    list_token: Secret | None = None
    """Bearer token for `GET /follow-ups` (only as ${ENV_NAME}); without it the list is off."""
    _rules_in_force: tuple[FollowUpRule, ...] = PrivateAttr()

    @model_validator(mode="after")
    def _build_rules(self) -> FollowUpConfig:
        """The runtime rules, built once, when the config is loaded."""
        if self.rules is None:
            self._rules_in_force = DEFAULT_RULES
        else:
            self._rules_in_force = tuple(settings.rule() for settings in self.rules)
        return self

    @property
    def rules_in_force(self) -> tuple[FollowUpRule, ...]:
        """The follow-up rules: the configured ones, or the NHS defaults (first match wins)."""
        return self._rules_in_force
