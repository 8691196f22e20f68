"""Loading the one YAML config file, validated at start.

Loading happens in three steps, each reporting every problem as ``path: reason``:

1. YAML is read (a syntax error names its line);
2. ``${NAME}`` references are replaced from the environment (secrets live only there);
   ``${NAME:-default}`` gives a default for settings that are not secrets;
3. the result is validated by the pydantic models of this package, then cross-checked (routes
   name known sources and destinations, destinations name known retry policies).

`check_config` does the same for ``carebridge check-config`` and ``carebridge test``, except that
an unset variable may be a warning: the settings that use one are then checked with a stand-in,
so the rest of the file is checked all the same.

`carebridge run` without ``-c`` uses `engine/defaults.yaml`, embedded in the package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.config.base import NAME_PATTERN, ConfigError
from engine.config.checks import cross_check
from engine.config.destinations import DESTINATION_TYPES
from engine.config.environment import literal_credentials, literal_secrets, substitute
from engine.config.root import Config
from engine.config.store import StoreConfig
from engine.yaml_files import load_yaml
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


_STAND_INS = ("", "1", "unset-" * 8, "https://unset.invalid/", "sqlite+aiosqlite:///unset.db")
"""What stands in for an unset variable when the rest of the file is checked without it: the
first of these its setting accepts (a text, a number, a secret, a URL, a store URL)."""


@dataclass(frozen=True)
class CheckedConfig:
    """A config checked with some environment variables unset (`check_config`): `config` is
    None when a setting that needs one could take no stand-in (then the checks across areas
    did not run); `unset` names each variable and the settings that use it."""

    config: Config | None
    unset: Mapping[str, tuple[str, ...]]

    def warnings(self) -> list[str]:
        """One line per unset variable, naming the settings it leaves unchecked."""
        lines = [f"environment variable {name} is not set (used by {', '.join(paths)})"
                 for name, paths in self.unset.items()]  # fmt: skip
        if self.config is None:
            lines.append("the checks across areas did not run: a setting that needs one of "
                         "these variables could not be checked without it")  # fmt: skip
        return lines


MAX_DEPTH = 32
"""Mappings and lists inside each other; a real config needs about 8."""
MAX_NODES = 100_000
"""Values in the file, each alias counted every time it is used; a real config has a few
thousand at most (inline code tables included)."""


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else origin
        raise ConfigError([f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        problem = f"(top level): settings nested deeper than {MAX_DEPTH} levels"
        raise ConfigError([problem]) from None
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of settings"])
    _check_size(raw)
    return raw


def _check_size(raw: dict[str, Any]) -> None:
    """Refuse a file whose values, aliases expanded, are nested too deep or too many.

    A YAML alias (``*name``) repeats its anchor's node without copying it: a few lines can
    stand for billions of values, or, an alias inside its own anchor, for an endless nesting.
    Every step after reading walks the values (substitution, validation), so such a file would
    hang or crash the engine at start instead of getting a reason. Walked without recursion.
    """
    stack: list[tuple[Any, int]] = [(raw, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ConfigError([f"(top level): more than {MAX_NODES:,} values (a YAML alias"
                               " counts each time it is used)"])  # fmt: skip
        if depth > MAX_DEPTH:
            raise ConfigError([f"(top level): settings nested deeper than {MAX_DEPTH} levels"
                               " (or a YAML alias used inside its own anchor)"])  # fmt: skip
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)


def _check(text: str, origin: str, env: Mapping[str, str], *, require_env: bool) -> CheckedConfig:
    """Every problem of the file as ``path: reason`` (ConfigError); with `require_env` false an
    unset variable is not one: the settings that use it are checked with a stand-in."""
    raw = _read_yaml(text, origin)
    secrets = literal_secrets(Config, raw) + literal_credentials(raw)
    refused = {problem.split(": ", 1)[0] for problem in secrets}
    unset: dict[str, list[str]] = {}
    stand_ins: dict[str, str] = {}
    while True:
        data = substitute(raw, "", env, unset, stand_ins)
        excused = {path for paths in unset.values() for path in paths} | refused
        try:
            config: Config | None = Config.model_validate(data)
            problems = []
            break
        except ValidationError as exc:
            found = [(_pydantic_path(e["loc"]), reason_of(e)) for e in exc.errors()]
        problems = [f"{path}: {reason}" for path, reason in found if path not in excused]
        failing = {path for path, _ in found if path in excused}
        if problems or not _next_stand_ins(failing, stand_ins):
            config = None
            break
        unset.clear()
    missing = [f"{path}: environment variable {name} is not set"
               for name, paths in unset.items() for path in paths]  # fmt: skip
    problems = secrets + (missing if require_env else []) + problems
    if config is not None:
        problems += cross_check(config)
    if problems:
        raise ConfigError([_by_name(p, raw) for p in problems])
    named = {name: tuple(_by_name(p, raw) for p in paths) for name, paths in unset.items()}
    return CheckedConfig(config, named)


def _next_stand_ins(failing: set[str], stand_ins: dict[str, str]) -> bool:
    """Try the next stand-in for each setting that refused its own; False when one has none."""
    for path in failing:
        tried = _STAND_INS.index(stand_ins.get(path, ""))
        if tried + 1 == len(_STAND_INS):
            return False
        stand_ins[path] = _STAND_INS[tried + 1]
    return True


def parse_config(
    text: str, *, origin: str = "config", env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate config text; raise ConfigError listing every problem (an unset
    environment variable is one)."""
    checked = _check(text, origin, os.environ if env is None else env, require_env=True)
    if checked.config is None:  # not reached: with every variable required, that is a problem
        raise ConfigError(checked.warnings())
    return checked.config


def _read(path: Path | None) -> tuple[str, str]:
    if path is None:
        text = resources.files("engine").joinpath("defaults.yaml").read_text("utf-8")
        return text, "embedded defaults"
    try:
        return path.read_text("utf-8"), str(path)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file at `path`, or the embedded defaults when `path` is None."""
    text, origin = _read(path)
    return parse_config(text, origin=origin, env=env)


def check_config(
    path: Path | None, env: Mapping[str, str] | None = None, *, require_env: bool = False
) -> CheckedConfig:
    """Check the config file at `path` as `load_config` does, except that without
    `require_env` an unset environment variable is a warning (`CheckedConfig.warnings`) and
    the rest of the file is still checked: a config repository holds no production secrets."""
    text, origin = _read(path)
    return _check(text, origin, os.environ if env is None else env, require_env=require_env)


def load_store_config(path: Path | None, env: Mapping[str, str] | None = None) -> StoreConfig:
    """Only the file's ``store:`` (for `carebridge migrate`, whose environment then needs none
    of the engine's other settings and secrets)."""
    text, origin = _read(path)
    raw = _read_yaml(text, origin).get("store") or {}
    problems = literal_credentials({"store": raw})
    problems += [f"store.{p}" for p in literal_secrets(StoreConfig, raw)]
    unset: dict[str, list[str]] = {}
    raw = substitute(raw, "store", os.environ if env is None else env, unset)
    problems += [f"{p}: environment variable {name} is not set"
                 for name, paths in unset.items() for p in paths]  # fmt: skip
    try:
        config = StoreConfig.model_validate(raw)
    except ValidationError as exc:
        problems += [f"store.{path_of(e['loc'])}: {reason_of(e)}" for e in exc.errors()]
    if problems:
        raise ConfigError(problems)
    return config
