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
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from engine.config.base import ConfigError
from engine.config.checks import cross_check
from engine.config.destinations import DESTINATION_TYPES
from engine.config.environment import literal_secrets, substitute
from engine.config.root import Config


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
    problems = literal_secrets(Config, raw)
    raw = substitute(raw, "", os.environ if env is None else env, problems)
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
