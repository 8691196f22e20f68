import re
from pathlib import Path
from typing import Annotated, get_args, get_origin

import pytest
from pydantic import BaseModel

from engine.config import Config, ConfigError, feed_profiles, load_config, parse_config
from engine.config.base import FromEnvironment, Secret, Strict
from engine.config.environment import literal_secrets
from engine.yaml_files import load_yaml
from mappings.clinical.follow_up import DEFAULT_RULES

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
sources:
  - name: mh-trust
    care_setting: mental_health
destinations:
  - name: community-team
    type: webhook
    url: https://community.example.nhs.uk/events
    secret: ${COMMUNITY_SECRET}
routes:
  - name: discharges
    match: {kinds: [discharge], care_settings: [mental_health]}
    to: [community-team]
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env=env or {})
    return caught.value.problems


def test_embedded_defaults_are_valid_and_use_sqlite_and_local_rabbitmq() -> None:
    config = load_config(None, env={})
    assert config.store.url.startswith("sqlite+aiosqlite://")
    assert config.amqp.url == "amqp://localhost:5672/"  # no credentials in a file
    assert {s.name for s in config.sources} == {"mh-trust", "acute-trust", "community"}


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_every_shipped_example_config_is_valid(name: str) -> None:
    env = {
        "COMMUNITY_TEAM_WEBHOOK_SECRET": "1" * 32,
        "GP_WEBHOOK_SECRET": "2" * 32,
        "GP_CONNECT_TOKEN": "t",
        "CAREBRIDGE_AMQP_URL": "amqp://guest:guest@localhost/",
        "CAREBRIDGE_STORE_URL": "sqlite+aiosqlite:///x.db",
        "NOTIFY_ACK_SECRET": "a" * 32,
        "ACK_SECRET": "c" * 32,
        "ALERT_WEBHOOK_SECRET": "b" * 32,
    }
    load_config(REPO / "config" / name, env=env)


def test_secret_is_taken_from_the_environment() -> None:
    secret = "a-webhook-secret-of-32-characters"
    config = parse_config(MINIMAL, env={"COMMUNITY_SECRET": secret})
    dest = config.destination("community-team")
    assert getattr(dest, "secret", None) == secret


def test_missing_environment_variable_is_reported_with_its_path() -> None:
    assert problems(MINIMAL) == [
        "destinations[community-team].secret: environment variable COMMUNITY_SECRET is not set"
    ]


def test_a_literal_secret_is_refused() -> None:
    text = MINIMAL.replace("${COMMUNITY_SECRET}", "hunter2")
    assert problems(text)[0].startswith(
        "destinations[community-team].secret: must be an environment reference"
    )


def test_every_error_is_reported_as_path_and_reason() -> None:
    text = """
sources:
  - name: mh-trust
    timezone: Mars/Olympus
  - name: mh-trust
destinations:
  - name: gp
    type: webhook
    url: not a url
    retry: patient
routes:
  - name: r
    to: [nowhere]
    match: {sources: [elsewhere], kinds: [teleport]}
delivery:
  poll_interval: soon
"""
    found = problems(text)
    # Two sources named alike: each is named by its index, not by the name they share.
    assert "sources[0].timezone: 'Mars/Olympus' is not an IANA time zone such as Europe/London" in (
        found
    )
    assert any(p.startswith("destinations[gp].url: String should match pattern") for p in found)
    assert any(p.startswith("routes[r].match.kinds[0]: Input should be") for p in found)
    assert "delivery.poll_interval: expected a duration such as 30s, 5m or 72h" in found


def test_cross_references_are_checked() -> None:
    text = """
sources: [{name: mh-trust}, {name: mh-trust}]
destinations:
  - {name: gp, type: webhook, url: "https://gp.example/x", retry: patient}
routes:
  - {name: r, to: [nowhere], match: {sources: [elsewhere]}}
"""
    assert problems(text) == [
        "sources[1].name: duplicate name 'mh-trust'",
        "destinations[gp].retry: no retry policy named 'patient'",
        "routes[r].to[0]: no destination named 'nowhere'",
        "routes[r].match.sources[0]: no source named 'elsewhere'",
    ]


def test_yaml_syntax_error_names_the_line() -> None:
    assert problems("sources:\n  - name: [unclosed\n")[0].startswith("line ")


def test_a_setting_given_twice_is_refused_naming_its_line() -> None:
    """PyYAML's last-one-wins would drop the first block without a word: here, the route that
    sends discharges to the community team."""
    again = MINIMAL + "routes:\n  - {name: other, to: [community-team]}\n"
    assert problems(again, {"COMMUNITY_SECRET": "s" * 32}) == [
        "line 14: not valid YAML (key 'routes' given twice)"
    ]
    nested = MINIMAL.replace("    type: webhook\n", "    type: webhook\n    type: amqp\n")
    assert problems(nested, {"COMMUNITY_SECRET": "s" * 32})[0].startswith("line 8: ")


def test_a_merged_key_may_still_be_overridden() -> None:
    assert load_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n") == {
        "base": {"x": 1, "y": 2},
        "c": {"x": 3, "y": 2},
    }


def test_unknown_settings_are_refused_not_ignored() -> None:
    text = "sources: [{name: a}]\nstore: {url: 'sqlite+aiosqlite:///x.db', pool: 3}\n"
    assert problems(text) == ["store.pool: unknown setting"]


def test_retry_policy_must_end() -> None:
    text = "sources: [{name: a}]\nretry_policies: {default: {max_age: null}}\n"
    assert problems(text) == [
        "retry_policies.default: set max_attempts or max_age, or a delivery could retry forever"
    ]


def test_durations_accept_units() -> None:
    config = parse_config(
        "sources: [{name: a}]\ndelivery: {poll_interval: 250ms, lease: 2m}\n", env={}
    )
    assert config.delivery.poll_interval.total_seconds() == 0.25
    assert config.delivery.lease.total_seconds() == 120


def test_environment_reference_may_carry_a_default() -> None:
    text = "sources: [{name: a}]\nhttp: {port: '${PORT:-9090}'}\n"
    assert parse_config(text, env={}).http.port == 9090
    assert parse_config(text, env={"PORT": "7070"}).http.port == 7070


def test_a_sources_profile_is_validated_with_exact_paths() -> None:
    text = """
sources:
  - name: mh-trust
    profile:
      ward_component: 3
      timezone: Europe/Paris
      code_tables: {discharge_destination: no-such-table}
"""
    assert problems(text) == [
        "sources[mh-trust].profile.ward_component: must be 1 (PV1-3.1) or 2 (PV1-3.2, the ITK "
        "default)",
        "sources[mh-trust].profile.code_tables.discharge_destination: no packaged code table "
        "'no-such-table'; known: itk-0112-discharge-method, mha-section-labels, zu5-legal-status",
        "sources[mh-trust].profile.timezone: set on the source itself, not in its profile",
    ]


def test_a_sources_profile_reaches_the_mapping() -> None:
    config = parse_config(
        "sources: [{name: mh, care_setting: mental_health, profile: {ward_component: 1}}]", env={}
    )
    [profile] = feed_profiles(config).values()
    assert (profile.feed, profile.ward_component, profile.care_setting.value) == (
        "mh", 1, "mental_health")  # fmt: skip


def test_two_sources_cannot_share_an_mllp_port() -> None:
    text = "sources: [{name: a, mllp: {port: 2575}}, {name: b, mllp: {port: 2575}}]\n"
    assert problems(text) == ["sources[b].mllp.port: 2575 is already the MLLP port of source 'a'"]


def test_mllp_client_certificates_need_a_ca() -> None:
    text = """
sources:
  - name: a
    mllp: {port: 2575, tls: {cert_file: s.pem, key_file: s.key, require_client_cert: true}}
"""
    assert problems(text) == [
        "sources[a].mllp.tls: require_client_cert needs ca_file, the CA that signs client certs"
    ]


def test_console_secrets_come_from_the_environment() -> None:
    text = """
sources: [{name: a}]
console:
  session_secret: this-is-a-literal-secret-of-enough-length
  tokens: [{name: prom, role: viewer, token: another-literal-token-of-enough-length}]
"""
    found = problems(text)
    assert found[:2] == [
        "console.session_secret: must be an environment reference like ${CONSOLE_SESSION_SECRET}",
        "console.tokens[0].token: must be an environment reference",
    ]


def test_alerts_name_known_sources_and_take_secrets_from_the_environment() -> None:
    text = """
sources: [{name: a}]
alerts:
  webhook: {url: "https://ops.example/alerts", secret: plain}
  silent_sources: {a: 30m, b: 10m}
"""
    assert problems(text) == [
        "alerts.webhook.secret: must be an environment reference",
        "alerts.silent_sources.b: no source named 'b'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("destinations: 7", "destinations: Input should be a valid list"),
        ("sources: 7", "sources: Input should be a valid list"),
        ("console: 5", "console: Input should be a valid dictionary or instance of ConsoleConfig"),
        ("destinations: [7]", "destinations[0]: Input should be a valid dictionary or object"),
    ],
)
def test_a_setting_of_the_wrong_shape_is_a_problem_not_a_crash(text: str, expected: str) -> None:
    prefix = "" if text.startswith("sources") else "sources: [{name: a}]\n"
    found = problems(f"{prefix}{text}\n")
    assert any(p.startswith(expected) for p in found), found


_SECRETS = """
sources: [{name: a, fhir: {tokens: ["${T}", "{literal}"]}}]
fhir_http: {port: 0}
follow_up:
  list_token: "{literal}"
  alert_webhook: {url: "https://ops.example/f", secret: "{literal}"}
alerts: {webhook: {url: "https://ops.example/a", secret: "{literal}"}}
console:
  session_secret: "{literal}"
  tokens: [{name: prom, role: viewer, token: "{literal}"}]
destinations:
  - {name: w, type: webhook, url: "https://w.example/", secret: "{literal}",
     headers: {Authorization: "Bearer {literal}"}}
  - {name: f, type: fhir, base_url: "https://f.example/", bearer_token: "{literal}"}
  - name: o
    type: fhir
    base_url: "https://f.example/"
    oauth2: {token_url: "https://f.example/t", client_id: c, client_secret: "{literal}"}
  - {name: n, type: notification, ack_base_url: "https://n.example", ack_secret: "{literal}",
     recipients: [{name: r, url: "https://r.example/", secret: "{literal}"}]}
"""
_SECRET_PATHS = [
    "console.session_secret",
    "console.tokens[0].token",
    "alerts.webhook.secret",
    "follow_up.alert_webhook.secret",
    "follow_up.list_token",
    "sources[a].fhir.tokens[1]",
    "destinations[w].secret",
    "destinations[w].headers.Authorization",
    "destinations[f].bearer_token",
    "destinations[o].oauth2.client_secret",
    "destinations[n].recipients[0].secret",
    "destinations[n].ack_secret",
]


@pytest.mark.parametrize("literal", ["a-literal-secret-of-at-least-32-characters", "${S:-dflt}"])
def test_every_secret_written_into_the_file_is_refused_naming_its_path(literal: str) -> None:
    found = problems(_SECRETS.replace("{literal}", literal), env={"T": "t", "S": "s" * 32})
    refused = [p.split(": ", 1) for p in found if "environment" in p.split(": ", 1)[1]]
    assert [path for path, _ in refused] == _SECRET_PATHS
    assert all(
        r.startswith(("must be an environment reference", "credentials must")) for _, r in refused
    )


def test_secrets_from_the_environment_are_accepted_and_short_ones_refused() -> None:
    text = _SECRETS.replace('"{literal}"', '"${S}"').replace("Bearer {literal}", "Bearer ${S}")
    assert parse_config(text, env={"T": "t" * 32, "S": "s" * 32}).console is not None
    short = problems(text, env={"T": "t" * 31, "S": "s" * 31})
    assert all(p.endswith(": must be at least 32 characters (a shorter secret can be guessed)")
               for p in short)  # fmt: skip
    # Every secret, token and key typed as one (the Authorization header is not a field).
    assert sorted(p.split(": ", 1)[0] for p in short) == sorted(
        [
            *(p for p in _SECRET_PATHS if not p.endswith("Authorization")),
            "sources[a].fhir.tokens[0]",
        ]
    )


def test_a_field_typed_as_a_secret_is_held_to_the_rule_wherever_it_is() -> None:
    class Inner(Strict):
        key: Secret
        keys: dict[str, Annotated[str, FromEnvironment("KEY")]] = {}

    class Outer(Strict):
        inner: list[Inner] | None = None

    raw = {"inner": [{"key": "${K}", "keys": {"a": "plain", "b": "${B}"}}, {"key": "plain"}]}
    assert literal_secrets(Outer, raw) == [
        "inner[0].keys.a: must be an environment reference like ${KEY}",
        "inner[1].key: must be an environment reference",
    ]
    assert literal_secrets(Outer, {"inner": 7}) == []


def test_follow_up_rules_are_validated_with_exact_paths() -> None:
    text = """
sources: [{name: a}]
follow_up:
  rules:
    - {name: r, standard: 72h, due_after: soon, care_settings: [mental_health, moon]}
    - {name: r, standard: 7d, due_after: 7d, excluded_destinations: ["19", "00"], colour: red}
"""
    assert problems(text) == [
        "follow_up.rules[0].due_after: expected a duration such as 30s, 5m or 72h",
        "follow_up.rules[0].care_settings[1]: Input should be 'mental_health', 'acute', "
        "'community' or 'unknown'",
        "follow_up.rules[1].excluded_destinations[1]: '00' is not an NHS Data Dictionary "
        "discharge destination code",
        "follow_up.rules[1].colour: unknown setting",
    ]
    assert problems("sources: [{name: a}]\nfollow_up: {rules: []}\n") == [
        "follow_up.rules: at least one rule is required (none would follow up nobody)"
    ]


def test_profiles_and_rules_are_built_once_when_the_config_is_loaded() -> None:
    text = """
sources: [{name: mh, profile: {ward_component: 1}}, {name: acute}]
follow_up:
  rules: [{name: r, standard: 72h, due_after: 72h}]
"""
    config = parse_config(text, env={})
    assert config.feed_profiles["mh"] is config.source("mh").feed_profile  # type: ignore[union-attr]
    assert config.feed_profiles["mh"].ward_component == 1
    assert config.feed_profiles["acute"].ward_component == 2
    assert config.follow_up_rules is config.follow_up_rules
    [rule] = config.follow_up_rules
    assert (rule.name, rule.due_after.total_seconds()) == ("r", 72 * 3600)
    assert parse_config("sources: [{name: a}]", env={}).follow_up_rules == DEFAULT_RULES


def _fields_named_like_secrets(model: type[BaseModel], path: str = "") -> dict[str, bool]:
    """Every setting under `model` whose name says secret or token: whether it is marked."""
    found: dict[str, bool] = {}
    for name, field in model.model_fields.items():
        where = f"{path}.{name}" if path else name
        marks = [*field.metadata, *_annotated_marks(field.annotation)]
        inner = _models_in(field.annotation)
        if not inner and re.search(r"secret|token", name) and name != "token_url":
            found[where] = any(isinstance(m, FromEnvironment) for m in marks)
        for model_inside in inner:
            found |= _fields_named_like_secrets(model_inside, where)
    return found


def _annotated_marks(annotation: object) -> list[object]:
    if get_origin(annotation) is Annotated:
        return list(get_args(annotation)[1:])
    return [m for arg in get_args(annotation) for m in _annotated_marks(arg)]


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def test_every_setting_named_as_a_secret_is_typed_as_one() -> None:
    found = _fields_named_like_secrets(Config)
    assert len(found) >= 10, found
    assert [path for path, marked in found.items() if not marked] == []


def test_amqp_url_may_list_the_nodes_of_a_cluster() -> None:
    env = {"COMMUNITY_SECRET": "c" * 32, "B": "b"}
    one = parse_config(MINIMAL + "amqp: {url: 'amqp://a:5672/'}\n", env=env)
    assert one.amqp.urls == ["amqp://a:5672/"]
    many = parse_config(MINIMAL + "amqp: {url: ['amqp://a:5672/', 'amqp://${B}:5672/']}\n",
                        env=env)  # fmt: skip
    assert many.amqp.urls == ["amqp://a:5672/", "amqp://b:5672/"]
    assert any("amqp.url" in p for p in problems(MINIMAL + "amqp: {url: []}\n", env))
