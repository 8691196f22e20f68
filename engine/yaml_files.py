"""A YAML file read into a strict pydantic model, every problem as ``file: path: reason``: the
shape the integration team's own files share (route tests, simulator pathways)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: by default the last
    one silently wins, so a second ``routes:`` block (a paste, a merge gone wrong) would drop
    every route of the first without a word. Keys brought in by a merge (``<<: *base``) may
    still be overridden, as YAML means them to be."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[object, object]:
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: the constructor refuses it anyway
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {str(key)[:60]!r} given twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)  # type: ignore[arg-type]


def load_yaml(text: str) -> object:
    """`text` read as YAML with `UniqueKeyLoader`."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


class Strict(BaseModel):
    """Unknown keys are errors; a file's model never changes once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FileProblems(Exception):
    """A file cannot be used; `problems` are ``file: path: reason`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def where(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a path: ``tests[0].input``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_model(path: Path, model: type[M]) -> M:
    """`path` read as YAML and validated as `model`; FileProblems saying what is wrong where."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FileProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise FileProblems([f"{path}: not valid YAML{line}"]) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise FileProblems(
            [f"{path}: {where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        ) from None
