"""The config refuses weak settings (issue 15 point 9): a secret or token shorter than 32
characters once resolved, plain http:// to a destination that carries patient data without
`allow_plain_http: true` on it, and a password written into `amqp.url` or `store.url`."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, parse_config

LONG = "k" * 32
PLAIN = (
    "plain http:// is unencrypted, and this destination carries patient data (or the "
    "credentials to send it): use https://, or set allow_plain_http: true on this destination "
    "(for a receiver on loopback, or behind a TLS-terminating proxy on the same host)"
)
WEAK = "must be at least 32 characters (a shorter secret can be guessed)"


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={"S": LONG, **(env or {})})
    return caught.value.problems


def with_destination(destination: str) -> str:
    return f"sources: [{{name: a}}]\ndestinations:\n  - {destination}\n"


@pytest.mark.parametrize("length", [1, 8, 31])
def test_a_secret_shorter_than_32_characters_is_refused_once_resolved(length: int) -> None:
    text = with_destination('{name: w, type: webhook, url: "https://w.example/", secret: "${S}"}')
    assert problems(text, env={"S": "x" * length}) == [f"destinations[w].secret: {WEAK}"]
    assert parse_config(text, env={"S": "x" * 32}).destination("w") is not None


WEBHOOK = '{name: w, type: webhook, url: "http://w.example/hook"}'
FHIR = (
    '{name: f, type: fhir, base_url: "http://f.example/fhir", oauth2: {token_url: '
    '"http://f.example/token", client_id: c, client_secret: "${S}"}}'
)
NOTIFY = (
    '{name: n, type: notification, ack_base_url: "http://cb.example", ack_secret: "${S}", '
    'recipients: [{name: gp, url: "https://gp.example/"}, {name: team, url: "http://t.example/"}]}'
)


@pytest.mark.parametrize(
    ("destination", "paths"),
    [
        (WEBHOOK, ["destinations[w].url"]),
        (FHIR, ["destinations[f].base_url", "destinations[f].oauth2.token_url"]),
        (NOTIFY, ["destinations[n].recipients[1].url", "destinations[n].ack_base_url"]),
    ],
)
def test_plain_http_to_a_destination_with_patient_data_needs_allow_plain_http(
    destination: str, paths: list[str]
) -> None:
    assert problems(with_destination(destination)) == [f"{path}: {PLAIN}" for path in paths]
    allowed = destination.replace("{name: ", "{allow_plain_http: true, name: ", 1)
    assert parse_config(with_destination(allowed), env={"S": LONG}).destinations
    secure = destination.replace("http://", "https://")
    assert parse_config(with_destination(secure), env={"S": LONG}).destinations


def test_allow_plain_http_is_per_destination() -> None:
    text = (
        "sources: [{name: a}]\ndestinations:\n"
        '  - {name: local, type: webhook, url: "http://127.0.0.1:9000/", allow_plain_http: true}\n'
        '  - {name: remote, type: webhook, url: "http://remote.example/"}\n'
    )
    assert problems(text) == [f"destinations[remote].url: {PLAIN}"]


AMQP_HINT = (
    "a password written into the file: take it from the environment, the whole URL as "
    "${CAREBRIDGE_AMQP_URL} or the password as ${NAME}"
)
STORE_HINT = AMQP_HINT.replace("AMQP", "STORE")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("amqp: {url: 'amqp://guest:guest@localhost:5672/'}", f"amqp.url: {AMQP_HINT}"),
        ("amqp: {url: 'amqps://cb:s3cret@${HOST}/'}", f"amqp.url: {AMQP_HINT}"),
        ("amqp: {url: '${URL:-amqp://cb:pw@rabbit/}'}", f"amqp.url: {AMQP_HINT}"),
        ("store: {url: 'postgresql+asyncpg://cb:pw@db/cb'}", f"store.url: {STORE_HINT}"),
        ("amqp: {url: ['${URL}', 'amqp://cb:pw@node2/']}", f"amqp.url[1]: {AMQP_HINT}"),
        ("store: {url: 'postgresql+asyncpg://cb@db/cb?password=pw'}", f"store.url: {STORE_HINT}"),
    ],
)
def test_a_password_written_into_the_file_is_refused(setting: str, expected: str) -> None:
    env = {"HOST": "rabbit", "URL": "amqp://x/"}
    assert problems(f"sources: [{{name: a}}]\n{setting}\n", env) == [expected]


@pytest.mark.parametrize(
    "setting",
    [
        "amqp: {url: '${URL}'}",
        "amqp: {url: 'amqps://carebridge:${RABBITMQ_PASSWORD}@rabbit:5671/'}",
        "amqp: {url: 'amqp://localhost:5672/'}",
        "store: {url: 'postgresql+asyncpg://carebridge@db/carebridge'}",
        "store: {url: 'postgresql+asyncpg://cb:${PGPASSWORD}@db/cb'}",
    ],
)
def test_credentials_from_the_environment_are_accepted(setting: str) -> None:
    env = {"URL": "amqp://cb:pw@rabbit/", "RABBITMQ_PASSWORD": "pw", "PGPASSWORD": "pw"}
    assert parse_config(f"sources: [{{name: a}}]\n{setting}\n", env=env).sources


MESH = (
    '{name: gp, type: mesh, url: "http://localhost:8700", mailbox: X26RXT001, '
    'password: "${P}", shared_key: "${K}", sender_ods: RXT}'
)


def test_mesh_is_held_to_https_but_its_issued_credentials_are_not_to_32_characters() -> None:
    # NHS England issues the mailbox password and the environment's shared key: short ones
    # are what a trust is given, so only an empty one is refused.
    env = {"P": "Sandbox-Password-1", "K": "TestSharedKey"}
    assert problems(with_destination(MESH), env) == [f"destinations[gp].url: {PLAIN}"]
    secure = MESH.replace("http://", "https://")
    assert parse_config(with_destination(secure), env={"S": LONG, **env}).destinations
    assert problems(with_destination(secure), {"P": "", "K": "k"}) == [
        "destinations[gp].password: must not be empty"
    ]


def test_two_mesh_destinations_on_one_mailbox_are_refused_and_practice_codes_upper_cased() -> None:
    env = {"P": "Sandbox-Password-1", "K": "TestSharedKey"}
    secure = MESH.replace("http://", "https://")
    twin = secure.replace("{name: gp,", "{name: gp-two,").replace("X26RXT001", "x26rxt001")
    text = f"sources: [{{name: a}}]\ndestinations: [{secure}, {twin}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env=env)
    assert any("is already the mailbox of 'gp'" in p for p in caught.value.problems)
    mapped = secure.replace("sender_ods: RXT}", "sender_ods: RXT, mailboxes: {y99901: X26GP001}}")
    config = parse_config(f"sources: [{{name: a}}]\ndestinations: [{mapped}]\n", env=env)
    [dest] = config.destinations
    assert dest.mailboxes == {"Y99901": "X26GP001"}  # type: ignore[union-attr]
