"""What the config gives the mapping layer: each source's feed profile, and the follow-up rules."""

from __future__ import annotations

from engine.config.root import Config
from engine.config.sources import SourceConfig
from mappings.clinical.follow_up import DEFAULT_RULES, FollowUpRule, rules_from_mapping
from mappings.profile import FeedProfile, ProfileError

_PROFILE_OWN_KEYS = ("feed", "care_setting", "timezone")


def feed_profile(source: SourceConfig) -> FeedProfile:
    """The mapping profile of one source; raises ProfileError (problems without a prefix)."""
    problems = [f"{k}: set on the source itself, not in its profile"
                for k in _PROFILE_OWN_KEYS if k in source.profile]  # fmt: skip
    own = {k: v for k, v in source.profile.items() if k not in _PROFILE_OWN_KEYS}
    try:
        profile = FeedProfile.from_mapping({
            "feed": source.name,
            "care_setting": source.care_setting.value,
            "timezone": source.timezone,
            **own,
        })  # fmt: skip
    except ProfileError as exc:
        problems += exc.problems
    if problems:
        raise ProfileError(problems)
    return profile


def follow_up_rules(config: Config) -> tuple[FollowUpRule, ...]:
    """The follow-up rules in force: the config's, or the NHS defaults."""
    if config.follow_up.rules is None:
        return DEFAULT_RULES
    return rules_from_mapping(config.follow_up.rules)


def feed_profiles(config: Config) -> dict[str, FeedProfile]:
    return {source.name: feed_profile(source) for source in config.sources}
