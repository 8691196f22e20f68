"""A quick proof that the R4B models would accept a resource, so they need not run on it.

The fhir.resources models pay about 30 us of Python for every element they build (a Coding,
an Identifier, a BundleEntry: fhir_core's before- and after-validators walk every field of the
class each time), and building them was three quarters of the FHIR mapping's time. Yet a
sender's resource is nearly always valid, and then all the models tell the mapping is "yes".

`plainly_valid` says yes, without building anything, only when the models certainly would:
every key is an element of the model (its JSON name), no value is null, the elements the
model requires (pydantic's required fields and fhir_core's) are there, each primitive value
passes the model's own pydantic type for that element (a pydantic `TypeAdapter` of the very
annotation the field has, so the same regex, date and number rules), each complex value is a
JSON object (a non-empty array of them where the element repeats) that is itself plainly
valid for the element's model, and at most one choice of each ``value[x]`` (exactly one where
required). Anything else says no and the models run as before, so every refusal, its path,
code and reason, is theirs and unchanged: a ``contained`` resource, an empty array, a null, a
wrong ``resourceType``, a value the type refuses.

It proves only what it understands: a model class with validators of its own (other than the
two fhir_core gives every class), another config, a field with extra constraints or an
aliasing it does not expect, is never plain, and its resources always go to the models.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Final

from fhir.resources.R4B.fhirprimitiveextension import FHIRPrimitiveExtension
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic import BaseModel, TypeAdapter

__all__ = ["plainly_valid"]

VERIFIED: Final = {"fhir.resources": "8.3.0", "fhir-core": "1.1.12"}
"""The versions this proof was checked against (the lock's). fhir_core's validators are matched
by identity, so a release that adds a rule inside them would go unseen: under any other
version the proof is off and every resource goes to the models. A version bump re-checks the
proof (tests/unit/test_fhir_plain.py, `bench/fhir_mapping.py --dump` against the models) and
then moves these."""
ENABLED: Final = all(version(name) == wanted for name, wanted in VERIFIED.items())

_VALUE, _ONE, _MANY, _NEVER = 0, 1, 2, 3
_BASE: Final = FHIRAbstractModel.__pydantic_decorators__.model_validators


def _function(method: Any) -> Any:
    return getattr(method, "__func__", method)


_BASE_FUNCTIONS: Final = {name: _function(d.func) for name, d in _BASE.items()}
_ONE_OF_KEYS: Final = {
    _function(FHIRPrimitiveExtension.validate_extension_or_fhir_comment_required): (
        "id",
        "extension",
        "fhir_comments",
    ),
}
"""The one validator of a model's own this module knows: a primitive's ``_`` sibling needs an
``id``, an ``extension`` or a comment (a null counts as absent; a plain value is never null)."""
_BASE_HOOKS: Final = ("_validate_required_primitive_elements", "_validate_one_of_many")


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a model accepts, by JSON name: a primitive's validator or a complex element's model."""

    fields: dict[str, tuple[int, Any]]
    required: tuple[str, ...]
    choices: tuple[tuple[tuple[str, ...], bool], ...]
    resource_type: str
    one_of: tuple[str, ...]
    """At least one of these is required (`_ONE_OF_KEYS`), when not empty."""


_SHAPES: dict[type, _Shape | None] = {}


def plainly_valid(model: Any, data: object) -> bool:
    """True only when `model.model_validate(data)` certainly succeeds (see the module)."""
    if not ENABLED:
        return False
    try:
        return isinstance(data, dict) and _plain(model, data)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return False  # a value the proof cannot read (ValidationError is a ValueError): no proof


def _plain(model: Any, data: dict[str, Any]) -> bool:
    shape = _SHAPES[model] if model in _SHAPES else _learn(model)
    if shape is None:
        return False
    fields = shape.fields
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            if key == "resourceType" and value == shape.resource_type:
                continue
            return False
        kind, of = field
        if value is None or kind == _NEVER:
            return False
        if kind == _VALUE:
            if of(value) is None:
                return False
        elif kind == _ONE:
            if type(value) is not dict or not _plain(of, value):
                return False
        elif type(value) is not list or not value:
            return False
        else:
            for item in value:
                if type(item) is not dict or not _plain(of, item):
                    return False
    for name in shape.required:
        if name not in data:
            return False
    if shape.one_of and not any(name in data for name in shape.one_of):
        return False
    for names, needed in shape.choices:
        present = [name for name in names if name in data]
        if len(present) > 1 or (needed and not present):
            return False
    return True


def _learn(model: Any) -> _Shape | None:
    try:
        shape = _shape(model)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        shape = None
    _SHAPES[model] = shape
    return shape


def _shape(model: Any) -> _Shape | None:
    """The model's shape, or None when it is not the plain fhir_core kind this module proves."""
    if not (isinstance(model, type) and issubclass(model, FHIRAbstractModel)):
        return None
    hooks = model.__pydantic_decorators__
    if (
        hooks.validators
        or hooks.field_validators
        or hooks.root_validators
        or not hooks.model_validators.keys() >= _BASE.keys()
        or any(_function(hooks.model_validators[n].func) is not _BASE_FUNCTIONS[n] for n in _BASE)
        or any(getattr(model, n) is not getattr(FHIRAbstractModel, n) for n in _BASE_HOOKS)
        or model.__init__ is not FHIRAbstractModel.__init__
        or model.model_validate.__func__ is not BaseModel.model_validate.__func__  # type: ignore[attr-defined]
        or model.__pydantic_post_init__ is not None
        or model.model_config != FHIRAbstractModel.model_config
        or "resourceType" in model.model_fields
    ):
        return None
    own = [_function(d.func) for n, d in hooks.model_validators.items() if n not in _BASE]
    if len(own) > 1 or (own and own[0] not in _ONE_OF_KEYS):
        return None
    one_of = _ONE_OF_KEYS[own[0]] if own else ()
    fields: dict[str, tuple[int, Any]] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if info.validation_alias not in (None, alias) or (
            alias != name and alias in model.model_fields
        ):
            return None
        element = None if is_primitive_type(info) else _element_model(info.annotation)
        if info.metadata:
            fields[alias] = (_NEVER, None)  # constraints of the field's own: not proved here
        elif is_primitive_type(info):
            annotation: Any = info.annotation
            fields[alias] = (_VALUE, TypeAdapter(annotation).validator.validate_python)
        elif element is not None:
            fields[alias] = (_MANY if is_list_type(info) else _ONE, element)
        else:
            fields[alias] = (_NEVER, None)  # a resource (contained): the models check it
    blank = model.model_construct()
    aliases = model.get_alias_mapping()
    required = [
        info.alias or name for name, info in model.model_fields.items() if info.is_required()
    ]
    for name, _ in blank.get_required_fields():  # fhir_core's: a value or its _ extension
        if name not in aliases or name not in fields:
            return None
        required.append(name)
    choices: list[tuple[tuple[str, ...], bool]] = []
    for prefix, names in blank.get_one_of_many_fields().items():
        extras: list[Any] = [model.model_fields[n].json_schema_extra for n in names]
        if not extras or any(
            not isinstance(e, dict) or e.get("one_of_many") != prefix for e in extras
        ):
            return None
        aliases_of = tuple(model.model_fields[n].alias or n for n in names)
        choices.append((aliases_of, extras[0].get("one_of_many_required") is True))
    return _Shape(fields, tuple(required), tuple(choices), str(model.__resource_type__), one_of)


def _element_model(annotation: Any) -> Any:
    """The FHIR model class a complex element's annotation names (``List[CodingType] | None``),
    or None for a resource-valued element (``contained``) or anything unexpected."""
    found = [a for a in _leaves(annotation) if a is not type(None)]
    if len(found) != 1 or not isinstance(found[0], type) or not issubclass(found[0], FhirBase):
        return None
    if issubclass(found[0], FhirElementOrResourceBase):
        return None
    return found[0].get_model_klass()


def _leaves(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    return [leaf for arg in args for leaf in _leaves(arg)]
