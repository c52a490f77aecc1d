"""JSON described by ``TypedDict`` types: the REST API decodes requests with them and its OpenAPI document is
written from them, so what the document says is what the server checks.

A field is ``Annotated[<type>, Doc(...), Rules(...)]``: ``Doc`` says what it means (and, for refusals, what it
must be); ``Rules`` are JSON Schema keywords. Decoding checks the shape (required and unknown fields, JSON
types), fills ``default``, checks the ranges (``minimum``, ``maximum``, ``maxItems``) and runs a field's
``Check``; other formats (``pattern``, ``maxLength``, ``maxProperties``, ``enum``...) are published here from
the domain's own limits and checked by the domain where the value is used (``goq.messages``, ``goq.identity``):
one check each, with its message. ``PayloadRules`` are keywords that depend on the sidecar's payload limit.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, NotRequired, Required, get_args, get_origin, get_type_hints

from goq.errors import ConfigError

REF: Final = "#/components/schemas/"
_CHECKED: Final = ("minimum", "maximum", "maxItems")


@dataclass(frozen=True)
class Doc:
    """A field's ``description``; ``expect`` says what it must be in a refusal (else derived from its type)."""

    text: str
    expect: str = ""


class Rules:
    """JSON Schema keywords of a field (``minimum=1``, ``pattern=...``, ``default=...``)."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords


@dataclass(frozen=True)
class Check:
    """The domain's own check of a field (``validate_message_id``): run by the decoder instead of its type
    check, for the domain's message; it returns the value to keep or raises ``ConfigError``."""

    of: Callable[[Any], Any]


@dataclass(frozen=True)
class PayloadRules:
    """Keywords that follow the sidecar's payload limit (``maxLength`` of a base64 payload)."""

    of: Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class Component:
    """A schema not written as a type (built from a table), named in ``components.schemas``."""

    name: str
    schema: Callable[[int], dict[str, Any]]


# The shape of a type.


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """``tp`` without ``Required``/``NotRequired``/``Annotated``, and the ``Annotated`` metadata."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(tp)
        if origin in (Required, NotRequired):
            (tp,) = get_args(tp)
        elif origin is Annotated:
            tp, *more = get_args(tp)
            metadata += more
        else:
            return tp, metadata


def _is_object(tp: Any) -> bool:
    """Whether ``tp`` is a ``TypedDict``."""
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def fields(tp: Any) -> dict[str, tuple[Any, list[Any]]]:
    """A ``TypedDict``'s fields, in order: their bare types and metadata."""
    return {name: _unwrap(hint) for name, hint in get_type_hints(tp, include_extras=True).items()}


def _check_of(metadata: Iterable[Any]) -> Callable[[Any], Any] | None:
    return next((m.of for m in metadata if isinstance(m, Check)), None)


def keywords(metadata: Iterable[Any], max_payload: int) -> dict[str, Any]:
    """The JSON Schema keywords ``metadata`` gives, later ones over earlier ones."""
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, Doc):
            found["description"] = item.text
        elif isinstance(item, Rules):
            found.update(item.keywords)
        elif isinstance(item, PayloadRules):
            found.update(item.of(max_payload))
    return found


# Schemas.

_SCALARS: Final[dict[Any, str]] = {str: "string", bool: "boolean", int: "integer", float: "number"}


class Schemas:
    """Writes JSON Schemas of types, collecting each named object (``TypedDict`` or ``Component``) once in
    ``components``. A name starting with ``_`` is written in place instead. ``closed`` objects (requests)
    allow no other properties."""

    def __init__(self, max_payload: int, closed: Iterable[Any] = ()) -> None:
        self.max_payload = max_payload
        self.closed = set(closed)
        self.components: dict[str, Any] = {}

    def of(self, tp: Any, metadata: Iterable[Any] = ()) -> dict[str, Any]:
        """``tp``'s schema, with the keywords of ``metadata`` (and of its own ``Annotated``)."""
        tp, own = _unwrap(tp)
        schema = self._bare(tp)
        return {**schema, **keywords([*own, *metadata], self.max_payload)}

    def _bare(self, tp: Any) -> dict[str, Any]:
        if isinstance(tp, Component):
            if tp.name not in self.components:
                self.components[tp.name] = tp.schema(self.max_payload)
            return {"$ref": REF + tp.name}
        if _is_object(tp):
            if tp.__name__.startswith("_"):
                return self._object(tp)
            if tp.__name__ not in self.components:
                self.components[tp.__name__] = {}  # reserved first: a type may refer to itself
                self.components[tp.__name__] = self._object(tp)
            return {"$ref": REF + tp.__name__}
        origin, args = get_origin(tp), get_args(tp)
        if origin is list:
            return {"type": "array", "items": self.of(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if tp in _SCALARS:
            return {"type": _SCALARS[tp]}
        raise TypeError(f"no JSON Schema for {tp!r}; use str, bool, int, float, list, dict or a TypedDict")

    def _object(self, tp: Any) -> dict[str, Any]:
        properties = {name: self.of(bare, metadata) for name, (bare, metadata) in fields(tp).items()}
        schema: dict[str, Any] = {"type": "object"}
        required = [name for name in properties if name in tp.__required_keys__]
        if required:
            schema["required"] = required
        if tp in self.closed:
            schema["additionalProperties"] = False
        schema["properties"] = properties
        if tp.__doc__ and not tp.__name__.startswith("_"):
            schema["description"] = " ".join(tp.__doc__.split())
        return schema


# Decoding.


def _phrase(tp: Any, rules: Mapping[str, Any]) -> str:
    """What a value of ``tp`` within ``rules`` is, in words: ``an integer from 1 to 1000``."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is list:
        most = f"at most {rules['maxItems']} " if "maxItems" in rules else ""
        return f"a list of {most}{_plural(args[0])}"
    if origin is dict:
        return f"an object of {_plural(args[1])}"
    words = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}[tp]
    if "minimum" in rules and "maximum" in rules:
        words += f" from {rules['minimum']:g} to {rules['maximum']:g}"
    return words


def _plural(tp: Any) -> str:
    return {str: "strings", bool: "booleans", int: "integers", float: "numbers"}[_unwrap(tp)[0]]


def _fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` (parsed JSON) has the JSON type of ``tp`` (the items of a list or map too)."""
    origin = get_origin(tp)
    if origin is list:
        item = _unwrap(get_args(tp)[0])[0]
        return isinstance(value, list) and all(_fits(item, v) for v in value)
    if origin is dict:
        item = _unwrap(get_args(tp)[1])[0]
        return isinstance(value, dict) and all(_fits(item, v) for v in value.values())
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, tp)


def _within(value: Any, rules: Mapping[str, Any]) -> bool:
    if "maxItems" in rules and len(value) > rules["maxItems"]:
        return False
    return not (("minimum" in rules and value < rules["minimum"]) or ("maximum" in rules and value > rules["maximum"]))


@dataclass(frozen=True)
class _Field:
    name: str
    tp: Any
    rules: dict[str, Any]
    required: bool
    expect: str
    checks_range: bool
    check: Callable[[Any], Any] | None


class _Shape:
    """A request type prepared for decoding: its fields' checks, built once."""

    def __init__(self, tp: Any) -> None:
        self.names = tuple(fields(tp))
        self.allowed = frozenset(self.names)
        self.fields: list[_Field] = []
        for name, (bare, metadata) in fields(tp).items():
            rules = keywords(metadata, 0)
            docs = [m for m in metadata if isinstance(m, Doc)]
            expect = docs[-1].expect if docs and docs[-1].expect else _phrase(bare, rules)
            checks_range = any(k in rules for k in _CHECKED)
            required = name in tp.__required_keys__
            self.fields.append(_Field(name, bare, rules, required, expect, checks_range, _check_of(metadata)))


_SHAPES: dict[Any, _Shape] = {}


def _shape(tp: Any) -> _Shape:
    shape = _SHAPES.get(tp)
    if shape is None:
        shape = _SHAPES[tp] = _Shape(tp)
    return shape


def _shown(tp: Any, value: Any) -> str:
    """A refused value in a message: numbers and booleans as written, anything else by its type (of the
    first wrong item, for a list or map that is one)."""
    origin = get_origin(tp)
    if (origin is list and isinstance(value, list)) or (origin is dict and isinstance(value, dict)):
        item = _unwrap(get_args(tp)[-1])[0]
        items: Iterable[Any] = value.values() if isinstance(value, dict) else value
        for wrong in (v for v in items if not _fits(item, v)):
            return f"{type(wrong).__name__} in it"
    return repr(value) if isinstance(value, bool | int | float) else type(value).__name__


def decode(tp: Any, body: dict[str, Any], what: str) -> Any:
    """``body`` checked against the ``TypedDict`` ``tp``, with its defaults filled in (in place), or
    ``ConfigError`` saying what is wrong and what is allowed. Returns ``body``: cast it to ``tp``."""
    shape = _shape(tp)
    if not shape.allowed.issuperset(body):
        unknown = sorted(set(body) - shape.allowed)
        raise ConfigError(
            f"{what} has unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(shape.names)}"
        )
    for field in shape.fields:
        if field.name not in body:
            if field.required:
                raise ConfigError(f'"{field.name}" is required: {field.expect}')
            if "default" in field.rules:
                body[field.name] = field.rules["default"]
            continue
        value = body[field.name]
        if field.check is not None:
            body[field.name] = field.check(value)
            continue
        if _fits(field.tp, value) and (not field.checks_range or _within(value, field.rules)):
            continue
        if field.required:
            raise ConfigError(f'"{field.name}" is required: {field.expect}')
        raise ConfigError(f'"{field.name}" must be {field.expect}, got {_shown(field.tp, value)}')
    return body


@dataclass(frozen=True)
class Parameter:
    """A query parameter as the handlers read it: its bare type, rules (limits, default) and ``Check``."""

    tp: Any
    rules: dict[str, Any]
    check: Callable[[Any], Any] | None


def parameters(tp: Any) -> dict[str, Parameter]:
    """Each parameter of a ``TypedDict`` of (query) parameters."""
    return {
        name: Parameter(bare, keywords(metadata, 0), _check_of(metadata))
        for name, (bare, metadata) in fields(tp).items()
    }
