"""Loading the one YAML config file, validated at start.

Loading happens in three steps, each reporting every problem as ``path: reason``:

1. YAML is read (a syntax error names its line);
2. ``${NAME}`` references are replaced from the environment (secrets live only there);
   ``${NAME:-default}`` gives a default for settings that are not secrets;
3. the result is validated by the pydantic models of this package, then cross-checked (routes
   name known sources and destinations, destinations name known retry policies).

`carebridge run` without ``-c`` uses `engine/defaults.yaml`, embedded in the package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.config.base import ConfigError
from engine.config.checks import cross_check
from engine.config.destinations import DESTINATION_TYPES
from engine.config.root import Config

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(node: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    """Replace ${NAME} from the environment, recording a problem for each one that is unset."""
    if isinstance(node, dict):
        return {
            k: _substitute(v, f"{path}.{k}" if path else str(k), env, problems)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, str):

        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(replace, node)
    return node


def _is_env_reference(value: object, *, whole: bool) -> bool:
    """A reference to the environment with no default (a default would put the secret here)."""
    if not isinstance(value, str):
        return False
    refs = [_ENV_REF.fullmatch(value)] if whole else list(_ENV_REF.finditer(value))
    return bool(refs) and all(m is not None and m.group(2) is None for m in refs)


def _secrets_by_reference(node: Any, problems: list[str]) -> None:
    """Secret fields must name an environment variable, never hold the secret itself."""
    alerts = node.get("alerts")
    hook = alerts.get("webhook") if isinstance(alerts, dict) else None
    if (
        isinstance(hook, dict)
        and hook.get("secret") is not None
        and not _is_env_reference(hook["secret"], whole=True)
    ):
        problems.append("alerts.webhook.secret: must be an environment reference")
    follow_up = node.get("follow_up")
    listed = follow_up.get("list_token") if isinstance(follow_up, dict) else None
    if listed is not None and not _is_env_reference(listed, whole=True):
        problems.append("follow_up.list_token: must be an environment reference")
    alert = follow_up.get("alert_webhook") if isinstance(follow_up, dict) else None
    if (
        isinstance(alert, dict)
        and alert.get("secret") is not None
        and not _is_env_reference(alert["secret"], whole=True)
    ):
        problems.append("follow_up.alert_webhook.secret: must be an environment reference")
    console = node.get("console")
    if isinstance(console, dict):
        if "session_secret" in console and not _is_env_reference(
            console["session_secret"], whole=True
        ):
            problems.append("console.session_secret: must be an environment reference like "
                            "${CONSOLE_SESSION_SECRET}")  # fmt: skip
        for j, token in enumerate(console.get("tokens") or []):
            value = token.get("token") if isinstance(token, dict) else None
            if value is not None and not _is_env_reference(value, whole=True):
                problems.append(f"console.tokens[{j}].token: must be an environment reference")
    for i, source in enumerate(node.get("sources") or []):
        fhir = source.get("fhir") if isinstance(source, dict) else None
        for j, token in enumerate(
            (fhir or {}).get("tokens") or [] if isinstance(fhir, dict) else []
        ):
            if not _is_env_reference(token, whole=True):
                problems.append(f"sources[{i}].fhir.tokens[{j}]: must be an environment "
                                "reference like ${MH_FHIR_TOKEN}")  # fmt: skip
    for i, dest in enumerate(node.get("destinations") or []):
        if not isinstance(dest, dict):
            continue
        secret = dest.get("secret")
        if secret is not None and not _is_env_reference(secret, whole=True):
            problems.append(
                f"destinations[{i}].secret: must be an environment reference like "
                "${WEBHOOK_SECRET}, not the secret itself"
            )
        for key in ("bearer_token",):
            value = dest.get(key)
            if value is not None and not _is_env_reference(value, whole=True):
                problems.append(f"destinations[{i}].{key}: must be an environment reference "
                                "like ${FHIR_TOKEN}, not the secret itself")  # fmt: skip
        if dest.get("type") == "notification" and not _is_env_reference(
            dest.get("ack_secret"), whole=True
        ):
            problems.append(f"destinations[{i}].ack_secret: must be an environment reference "
                            "like ${NOTIFY_ACK_SECRET}")  # fmt: skip
        for j, recipient in enumerate(dest.get("recipients") or []):
            secret = recipient.get("secret") if isinstance(recipient, dict) else None
            if secret is not None and not _is_env_reference(secret, whole=True):
                problems.append(f"destinations[{i}].recipients[{j}].secret: must be an "
                                "environment reference")  # fmt: skip
        oauth = dest.get("oauth2")
        if isinstance(oauth, dict) and not _is_env_reference(
            oauth.get("client_secret"), whole=True
        ):
            problems.append(f"destinations[{i}].oauth2.client_secret: must be an environment "
                            "reference like ${OAUTH_SECRET}")  # fmt: skip
        for header, value in (dest.get("headers") or {}).items():
            if header.lower() == "authorization" and not _is_env_reference(value, whole=False):
                problems.append(
                    f"destinations[{i}].headers.{header}: credentials must come "
                    "from the environment (${NAME})"
                )


def _pydantic_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i == 2 and loc[0] == "destinations" and part in DESTINATION_TYPES:
            continue  # the discriminator tag pydantic inserts after destinations[i]
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def parse_config(
    text: str, *, origin: str = "config", env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate config text; raise ConfigError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else origin
        raise ConfigError([f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of settings"])
    problems: list[str] = []
    _secrets_by_reference(raw, problems)
    raw = _substitute(raw, "", os.environ if env is None else env, problems)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        unset = {p.split(": ", 1)[0] for p in problems if p.endswith(" is not set")}
        problems += [f"{path}: {e['msg']}" for e in exc.errors()
                     if (path := _pydantic_path(e["loc"])) not in unset]  # fmt: skip
        raise ConfigError(problems) from None
    problems += cross_check(config)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file at `path`, or the embedded defaults when `path` is None."""
    if path is None:
        text = resources.files("engine").joinpath("defaults.yaml").read_text("utf-8")
        return parse_config(text, origin="embedded defaults", env=env)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    return parse_config(text, origin=str(path), env=env)
