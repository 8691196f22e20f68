"""``${NAME}`` references in the config file: filled in from the environment, and required for
every secret.

Which settings are secrets is said by their type, not by a list kept here: a field annotated
with `FromEnvironment` (a webhook's `secret`, a console token, ...) or `CredentialHeaders`
(a destination's `headers`). `literal_secrets` walks the models beside the file's data and
names each secret written into the file itself. A value of the wrong shape is left to the
models' own validation to report.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from engine.config.base import ConfigError, CredentialHeaders, FromEnvironment

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(
    node: Any,
    path: str,
    env: Mapping[str, str],
    unset: dict[str, list[str]],
    stand_ins: Mapping[str, str] | None = None,
) -> Any:
    """Replace ${NAME} from the environment, noting in `unset` the path of each one that is
    not set (without a default): it becomes "" there. A text whose path has a `stand_ins`
    entry becomes that entry (its own value could not be checked: an unset variable, a secret
    written into the file)."""
    if isinstance(node, dict):
        return {k: substitute(v, f"{path}.{k}" if path else str(k), env, unset, stand_ins)
                for k, v in node.items()}  # fmt: skip
    if isinstance(node, list):
        return [substitute(v, f"{path}[{i}]", env, unset, stand_ins) for i, v in enumerate(node)]
    if isinstance(node, str):
        missing: list[str] = []

        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        value = _ENV_REF.sub(replace, node)
        for name in missing:
            unset.setdefault(name, []).append(path)
        return stand_ins[path] if stand_ins and path in stand_ins else value
    return node


_REFERENCE = "\x00"
_URLS_WITH_CREDENTIALS = {"amqp": "CAREBRIDGE_AMQP_URL", "store": "CAREBRIDGE_STORE_URL"}


def literal_credentials(raw: Mapping[str, Any]) -> list[str]:
    """A ``path: reason`` problem for `amqp.url` or `store.url` when the file itself (a
    ``${NAME:-default}`` default included) holds a password: it must come from the environment,
    as the whole URL (``${CAREBRIDGE_AMQP_URL}``) or the password (``${RABBITMQ_PASSWORD}``)."""
    problems: list[str] = []
    for area, example in _URLS_WITH_CREDENTIALS.items():
        section = raw.get(area)
        url = section.get("url") if isinstance(section, dict) else None
        urls = enumerate(url) if isinstance(url, list) else [(None, url)]  # a cluster's nodes
        for index, one in urls:
            if isinstance(one, str) and _password_in_file(one):
                where = f"{area}.url" if index is None else f"{area}.url[{index}]"
                problems.append(f"{where}: a password written into the file: take it from the "
                                f"environment, the whole URL as ${{{example}}} or the password "
                                "as ${NAME}")  # fmt: skip
    return problems


def _password_in_file(url: str) -> bool:
    """Whether the URL's password (or a ``password=`` parameter) has characters of its own,
    not only from ``${NAME}`` references without a default."""
    text = _ENV_REF.sub(lambda m: _REFERENCE if m.group(2) is None else m.group(2), url)
    try:
        parts = urlsplit(text)
        password = parts.password or ""
    except ValueError:
        return False
    given = [password, *(v for k, v in parse_qsl(parts.query) if k.lower() == "password")]
    return any(value.replace(_REFERENCE, "") for value in given)


def _is_env_reference(value: object, *, whole: bool) -> bool:
    """A reference to the environment with no default (a default would put the secret here)."""
    if not isinstance(value, str):
        return False
    refs = [_ENV_REF.fullmatch(value)] if whole else list(_ENV_REF.finditer(value))
    return bool(refs) and all(m is not None and m.group(2) is None for m in refs)


def literal_secrets(model: type[BaseModel], raw: object) -> list[str]:
    """A ``path: reason`` problem for each secret of `model` that `raw` (the file's data, before
    substitution) holds as a value instead of a ``${NAME}`` reference."""
    problems: list[str] = []
    _walk(model, (), raw, "", problems)
    return problems


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _walk(
    annotation: Any, metadata: Iterable[object], raw: object, path: str, problems: list[str]
) -> None:
    if get_origin(annotation) is Annotated:
        annotation, *more = get_args(annotation)
        metadata = (*metadata, *more)
    metadata = tuple(metadata)
    if _checked_here(metadata, raw, path, problems):
        return
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if isinstance(raw, dict):
            for name, field in annotation.model_fields.items():
                if name in raw:
                    _walk_field(field, raw[name], _join(path, name), problems)
    elif origin is Union or origin is types.UnionType:
        _walk_union(get_args(annotation), _discriminator(metadata), raw, path, problems)
    elif origin in (list, tuple) and isinstance(raw, list):
        for i, item in enumerate(raw):
            _walk(get_args(annotation)[0], (), item, f"{path}[{i}]", problems)
    elif origin is dict and isinstance(raw, dict):
        for key, item in raw.items():
            _walk(get_args(annotation)[1], (), item, _join(path, key), problems)


def _walk_field(field: FieldInfo, raw: object, path: str, problems: list[str]) -> None:
    metadata = [*field.metadata, field] if field.discriminator else field.metadata
    _walk(field.annotation, metadata, raw, path, problems)


def _checked_here(
    metadata: tuple[object, ...], raw: object, path: str, problems: list[str]
) -> bool:
    """Apply a secret mark found on this value; True when it was one (nothing below to walk)."""
    for mark in metadata:
        if isinstance(mark, FromEnvironment):
            if not _is_env_reference(raw, whole=True):
                like = f" like ${{{mark.example}}}" if mark.example else ""
                problems.append(f"{path}: must be an environment reference{like}")
            return True
        if isinstance(mark, CredentialHeaders):
            for header, value in raw.items() if isinstance(raw, dict) else ():
                if str(header).lower() == "authorization" and not _is_env_reference(
                    value, whole=False
                ):
                    problems.append(f"{path}.{header}: credentials must come "
                                    "from the environment (${NAME})")  # fmt: skip
            return True
    return False


def _discriminator(metadata: tuple[object, ...]) -> str | None:
    tags = (m.discriminator for m in metadata if isinstance(m, FieldInfo))
    return next((tag for tag in tags if isinstance(tag, str)), None)


def _walk_union(
    members: tuple[Any, ...], tag: str | None, raw: object, path: str, problems: list[str]
) -> None:
    """Walk the members `raw` may be: the one its tag names, or each (a problem once)."""
    if raw is None and type(None) in members:
        return
    for member in members:
        if tag is not None and not _tagged(member, tag, raw):
            continue
        found: list[str] = []
        _walk(member, (), raw, path, found)
        problems += [p for p in found if p not in problems]


def _tagged(member: Any, tag: str, raw: object) -> bool:
    if not (isinstance(raw, dict) and isinstance(member, type) and issubclass(member, BaseModel)):
        return False
    field = member.model_fields.get(tag)
    return field is not None and raw.get(tag) in get_args(field.annotation)


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_file(text: str, origin: str) -> dict[str, str]:
    """Variables from a dotenv-style file: ``NAME=value`` lines (``export`` allowed), blank
    lines and ``#`` comments skipped, a value in single or double quotes taken as written.
    Raises ConfigError naming each line that is none of these."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            problems.append(f"{origin} line {number}: expected NAME=value")
            continue
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        found[name] = value
    if problems:
        raise ConfigError(problems)
    return found
