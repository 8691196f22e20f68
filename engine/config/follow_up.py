"""``follow_up:``: which discharges start a follow-up clock, and when to raise an alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from engine.config.alerts import AlertWebhook
from engine.config.base import Duration, Secret, Strict, problems_error
from mappings.clinical.follow_up import DEFAULT_RULES, FollowUpRule, RuleError, rules_from_mapping


class FollowUpConfig(Strict):
    """Follow-up after discharge: which discharges start a clock (rules, first match wins; the
    NHS defaults when omitted), and when to raise an alert."""

    rules: list[dict[str, Any]] | None = None
    check_interval: Duration = timedelta(seconds=60)
    unacknowledged_after: Duration = timedelta(hours=4)
    alert_webhook: AlertWebhook | None = None
    list_token: Secret | None = Field(default=None, min_length=32)
    """Bearer token for `GET /follow-ups` (only as ${ENV_NAME}); without it the list is off."""
    _rules_in_force: tuple[FollowUpRule, ...] = PrivateAttr()

    @model_validator(mode="after")
    def _build_rules(self) -> FollowUpConfig:
        """Validate `rules` (with the clinical layer's own reader, problems at their exact
        paths) and build them, once, when the config is loaded."""
        if self.rules is None:
            self._rules_in_force = DEFAULT_RULES
            return self
        try:
            self._rules_in_force = rules_from_mapping(self.rules)
        except RuleError as exc:
            problems = [p.removeprefix("rules") for p in exc.problems]
            raise problems_error("rules", ("rules",), problems) from None
        return self

    @property
    def rules_in_force(self) -> tuple[FollowUpRule, ...]:
        """The follow-up rules: the configured ones, or the NHS defaults (first match wins)."""
        return self._rules_in_force
