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

from engine.config.base import NAME_PATTERN, ConfigError
from engine.config.checks import cross_check
from engine.config.destinations import DESTINATION_TYPES
from engine.config.environment import literal_secrets, substitute
from engine.config.root import Config
from mappings.settings import path_of, reason_of


def _pydantic_path(loc: tuple[int | str, ...]) -> str:
    if len(loc) > 2 and loc[0] == "destinations" and loc[2] in DESTINATION_TYPES:
        loc = (*loc[:2], *loc[3:])  # the discriminator tag pydantic inserts after destinations[i]
    return path_of(loc) or "(top level)"


_ITEM = re.compile(r"^(sources|destinations|routes)\[(\d+)\]")


def _by_name(problem: str, raw: Mapping[str, Any]) -> str:
    """``sources[mh-trust].timezone`` for ``sources[0].timezone``: an item of a list of named
    things is named by its name when it has one of its own (else by its index)."""
    match = _ITEM.match(problem)
    items = raw.get(match.group(1)) if match else None
    if match is None or not isinstance(items, list) or int(match.group(2)) >= len(items):
        return problem
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    name = names[int(match.group(2))]
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or names.count(name) > 1:
        return problem
    return f"{match.group(1)}[{name}]{problem[match.end() :]}"


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
        problems += [f"{path}: {reason_of(e)}" for e in exc.errors()
                     if (path := _pydantic_path(e["loc"])) not in unset]  # fmt: skip
        raise ConfigError([_by_name(p, raw) for p in problems]) from None
    problems += cross_check(config)
    if problems:
        raise ConfigError([_by_name(p, raw) for p in problems])
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
