"""`carebridge check-config` without the secrets: a team's config repository holds no production
secrets, so unset environment variables are warnings and the rest of the file is still checked;
`--env-file` and `--require-env` are the check before a deployment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAREBRIDGE = Path(sys.executable).with_name("carebridge")
EXAMPLE = REPO / "config" / "carebridge.example.yaml"
EXAMPLE_VARIABLES = [
    "CAREBRIDGE_AMQP_URL",
    "CAREBRIDGE_STORE_URL",
    "COMMUNITY_TEAM_WEBHOOK_SECRET",
    "GP_WEBHOOK_SECRET",
    "GP_CONNECT_TOKEN",
    "ALERT_WEBHOOK_SECRET",
]
SECRET = "s" * 40


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command with nothing of this process's environment but PATH (and `env`)."""
    return subprocess.run(
        [str(CAREBRIDGE), "check-config", *args], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})}, check=False,
    )  # fmt: skip


def warned(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[3] for line in result.stderr.splitlines()
            if line.startswith("warning: environment variable ")]  # fmt: skip


def test_the_example_config_checks_without_its_secrets_listing_each_unset_variable() -> None:
    result = check(str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert warned(result) == EXAMPLE_VARIABLES
    assert (
        "warning: environment variable GP_WEBHOOK_SECRET is not set (used by "
        "destinations[gp-practice-inbox].secret, "
        "destinations[discharge-notifications].recipients[0].secret)"
    ) in result.stderr.splitlines()
    assert result.stdout.strip() == (
        f"{EXAMPLE}: valid (3 sources, 4 destinations, 4 routes); 6 environment variables not set"
    )


def test_the_rest_of_the_file_is_still_checked_with_variables_unset(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "amqp: {url: '${AMQP_URL}'}\n"
        "store: {url: '${STORE_URL}'}\n"
        "sources: [{name: a, timezone: Mars/Olympus}]\n"
        "destinations:\n"
        "  - {name: n, type: notification, ack_base_url: 'https://n.example',\n"
        "     ack_secret: '${ACK}', recipients: [{name: r, url: 'https://r.example/'}]}\n"
        "routes: [{name: r, to: [n, nowhere]}]\n"
    )
    result = check(str(config))
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert problems == ["sources[a].timezone: 'Mars/Olympus' is not an IANA time zone such as "
                        "Europe/London"]  # fmt: skip
    # Once the models are valid with stand-ins for the unset variables, the checks across
    # areas run too.
    config.write_text(config.read_text().replace("Mars/Olympus", "Europe/London"))
    result = check(str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "routes[r].to[1]: no destination named 'nowhere'"


def test_require_env_makes_each_unset_variable_an_error() -> None:
    result = check(str(EXAMPLE), "--require-env")
    assert result.returncode == 1
    assert "amqp.url: environment variable CAREBRIDGE_AMQP_URL is not set" in result.stderr
    assert "warning:" not in result.stderr
    assert result.stdout == ""


def test_an_env_file_supplies_the_variables(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "# production, kept out of the config repository\n"
        "\n"
        "export CAREBRIDGE_AMQP_URL=amqps://rabbitmq.trust.example:5671/\n"
        'CAREBRIDGE_STORE_URL="postgresql+asyncpg://carebridge@db/carebridge"\n'
        f"COMMUNITY_TEAM_WEBHOOK_SECRET='{SECRET}'\n"
        f"GP_WEBHOOK_SECRET={SECRET}  # rotated quarterly\n"
        f"ALERT_WEBHOOK_SECRET={SECRET}\n"
    )
    result = check(str(EXAMPLE), "--env-file", str(env_file), "--require-env",
                   env={"GP_CONNECT_TOKEN": SECRET})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() == f"{EXAMPLE}: valid (3 sources, 4 destinations, 4 routes)"
    # Without the token, the one variable neither gives is named.
    result = check(str(EXAMPLE), "--env-file", str(env_file))
    assert result.returncode == 0
    assert warned(result) == ["GP_CONNECT_TOKEN"]


def test_the_values_an_env_file_gives_are_checked(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("CAREBRIDGE_STORE_URL=mysql://db/carebridge\n")
    result = check(str(EXAMPLE), "--env-file", str(env_file))
    assert result.returncode == 1
    assert "store.url: must start with sqlite+aiosqlite:// or postgresql+asyncpg://" in (
        result.stderr.splitlines()
    )


def test_a_broken_or_missing_env_file_is_refused_naming_the_line(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("GOOD=1\nthis is not a variable\n")
    result = check(str(EXAMPLE), "--env-file", str(env_file))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{env_file} line 2: expected NAME=value"]
    missing = check(str(EXAMPLE), "--env-file", str(tmp_path / "missing.env"))
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"{tmp_path / 'missing.env'}: cannot read")


def test_route_tests_run_without_the_secrets_naming_what_is_unset() -> None:
    result = subprocess.run(
        [str(CAREBRIDGE), "test", str(REPO / "config" / "tests")], capture_output=True,
        text=True, timeout=120, env={"PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[4] for line in result.stderr.splitlines()] == EXAMPLE_VARIABLES
