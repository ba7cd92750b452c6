"""Which JSON schemas an `attributes` job can always finish, compiled into a plan.

Constrained decoding (llguidance, compact JSON, properties in declared order) keeps
every token valid; the budget guard also needs to know, at any point, the shortest
bytes that finish the document. That is only computable for a known subset of JSON
Schema, compiled here into a tree of `Node`s, each with its minimal value. Anything
outside the subset is refused with the path and the keyword, so a user learns at
submit time what to change. Pure Python: both the web (submit check) and the worker
(guard) import it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

# Keywords that change nothing the model may emit.
ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"}
)
_KEYWORDS: dict[str, frozenset[str]] = {
    "object": frozenset({"type", "properties", "required", "additionalProperties"}),
    "array": frozenset({"type", "items", "minItems", "maxItems"}),
    "string": frozenset({"type", "minLength", "maxLength"}),
    "integer": frozenset({"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "number": frozenset({"type", "minimum", "maximum"}),
    "boolean": frozenset({"type"}),
    "null": frozenset({"type"}),
}
SUPPORTED_SUMMARY = (
    "object (properties, required, additionalProperties false; or additionalProperties true and no properties: "
    "any keys and values), array (items, minItems, maxItems), "
    "string (minLength, maxLength), integer (minimum, maximum, exclusiveMinimum, exclusiveMaximum), "
    "number (whole-number minimum, maximum), boolean, null, enum and const of plain values"
)
ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
"""Any JSON object, keys and values of every kind: what OpenAI's JSON mode (`json_object`) asks for."""
# Deeper schemas are refused before anything recursive (the JSON Schema meta-check included) reads them.
MAX_SCHEMA_DEPTH = 32
# The byte a forced string is padded with up to minLength: printable, one byte, never escaped.
PAD = b"-"


def literal(value: Any) -> bytes:
    """A JSON value as llguidance writes it: compact, non-ASCII kept raw, whole numbers without `.0`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Node:
    """One schema position; `minimal` is its shortest valid value, as emitted bytes."""

    path: str
    minimal: bytes


@dataclass(frozen=True)
class StringNode(Node):
    min_length: int
    max_length: int | None


@dataclass(frozen=True)
class LiteralNode(Node):
    """A fixed set of values: enum, const, boolean, null."""

    choices: tuple[bytes, ...]


@dataclass(frozen=True)
class NumberNode(Node):
    integer: bool
    low: int | None
    high: int | None


@dataclass(frozen=True)
class ArrayNode(Node):
    items: Node
    min_items: int
    max_items: int | None


@dataclass(frozen=True)
class Property:
    key: bytes  # the key as emitted, quotes included
    schema: Node
    required: bool


@dataclass(frozen=True)
class ObjectNode(Node):
    properties: tuple[Property, ...]


@dataclass(frozen=True)
class OpenObjectNode(Node):
    """An object of any keys, each holding any JSON value (`additionalProperties: true`, no properties)."""


@dataclass(frozen=True)
class AnyNode(Node):
    """Any JSON value: what an open object's keys hold."""


class UnsupportedSchema(ValueError):
    """The schema uses what the planner cannot finish; `problems` name each path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def nesting_depth(value: Any) -> int:
    """How deeply JSON containers nest in `value`, without recursion."""
    deepest = 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


def normalized(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema the model is constrained by: objects that leave `additionalProperties` out get `false`.

    llguidance would otherwise let the model append arbitrary keys of any type, which
    no plan can bound; every document valid for the result is valid for the original.
    """
    if not isinstance(schema, dict):
        return schema
    out = {key: _normalized_child(key, value) for key, value in schema.items()}
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _normalized_child(key: str, value: Any) -> Any:
    if key == "properties" and isinstance(value, dict):
        return {name: normalized(sub) for name, sub in value.items()}
    if key == "items":
        return normalized(value)
    return value


def compile_schema(schema: dict[str, Any]) -> Node:
    """The plan of a (normalized) schema, or `UnsupportedSchema` listing every problem."""
    problems: list[str] = []
    node = _compile(schema, "params.schema", problems)
    if problems or node is None:
        raise UnsupportedSchema(problems)
    return node


def _compile(schema: Any, path: str, problems: list[str]) -> Node | None:
    if not isinstance(schema, dict):
        problems.append(f"{path}: must be a schema object (true/false schemas are not supported)")
        return None
    if "enum" in schema or "const" in schema:
        return _literal(schema, path, problems)
    kind = schema.get("type")
    if not isinstance(kind, str) or kind not in _KEYWORDS:
        problems.append(f"{path}: needs a single 'type' (one of {', '.join(_KEYWORDS)}) or an enum/const")
        return None
    extra = sorted(set(schema) - _KEYWORDS[kind] - ANNOTATIONS)
    if extra:
        problems.append(f"{path}: {', '.join(extra)} not supported for type {kind}")
        return None
    return _COMPILERS[kind](schema, path, problems)


def _literal(schema: dict[str, Any], path: str, problems: list[str]) -> Node | None:
    extra = sorted(set(schema) - {"enum", "const", "type"} - ANNOTATIONS)
    values = schema["enum"] if "enum" in schema else [schema["const"]]
    if extra:
        problems.append(f"{path}: {', '.join(extra)} cannot be combined with enum/const")
        return None
    plain = (str, int, float, bool, type(None))
    if not values or not all(isinstance(v, plain) for v in values):
        problems.append(f"{path}: enum/const values must be strings, numbers, booleans or null")
        return None
    if any(isinstance(v, float) and not v.is_integer() and "e" in repr(v) for v in values):
        problems.append(f"{path}: enum numbers must be written without an exponent")
        return None
    if "type" in schema:
        checker = Draft202012Validator({"type": schema["type"]})
        if not all(checker.is_valid(v) for v in values):
            problems.append(f"{path}: every enum/const value must match 'type'")
            return None
    choices = tuple(sorted({literal(v) for v in values}, key=lambda b: (len(b), b)))
    return LiteralNode(path, choices[0], choices)


def _bounds(schema: dict[str, Any], low_key: str, high_key: str, path: str, problems: list[str]) -> tuple[int, int]:
    low, high = schema.get(low_key, 0), schema.get(high_key)
    for key in (low_key, high_key):
        value = schema.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            problems.append(f"{path}: {key} must be a non-negative integer")
    if isinstance(high, int) and isinstance(low, int) and high < low:
        problems.append(f"{path}: {high_key} is below {low_key}: no value fits")
    return low, high


def _string(schema: dict[str, Any], path: str, problems: list[str]) -> Node | None:
    low, high = _bounds(schema, "minLength", "maxLength", path, problems)
    if problems:
        return None
    return StringNode(path, b'"' + PAD * low + b'"', low, high)


def _number(schema: dict[str, Any], path: str, problems: list[str]) -> Node | None:
    integer = schema["type"] == "integer"
    values = {key: schema.get(key) for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")}
    for key, value in values.items():
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            problems.append(f"{path}: {key} must be a number")
        elif value is not None and not integer and not float(value).is_integer():
            problems.append(f"{path}: {key} of a number must be a whole number (or use type integer)")
    if problems:
        return None
    lows = [math.ceil(v) for v in (values["minimum"],) if v is not None]
    lows += [math.floor(v) + 1 for v in (values["exclusiveMinimum"],) if v is not None]
    highs = [math.floor(v) for v in (values["maximum"],) if v is not None]
    highs += [math.ceil(v) - 1 for v in (values["exclusiveMaximum"],) if v is not None]
    low, high = max(lows, default=None), min(highs, default=None)
    if low is not None and high is not None and high < low:
        problems.append(f"{path}: no {schema['type']} lies between its bounds")
        return None
    zero = 0 if low is None or low <= 0 else low
    smallest = zero if high is None or zero <= high else high
    return NumberNode(path, str(smallest).encode(), integer, low, high)


def _array(schema: dict[str, Any], path: str, problems: list[str]) -> Node | None:
    low, high = _bounds(schema, "minItems", "maxItems", path, problems)
    if "items" not in schema:
        problems.append(f"{path}: an array needs 'items' (a schema for every element)")
        return None
    items = _compile(schema["items"], f"{path}.items", problems)
    if items is None or problems:
        return None
    return ArrayNode(path, b"[" + b",".join([items.minimal] * low) + b"]", items, low, high)


def _object(schema: dict[str, Any], path: str, problems: list[str]) -> Node | None:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", False)
    if extra is True and not properties and not required:
        return OpenObjectNode(path, b"{}")
    if extra is not False:
        problems.append(
            f"{path}: additionalProperties must be false (or left out, which means false here), "
            "or true on an object without properties"
        )
    missing = [name for name in required if name not in properties]
    if missing:
        problems.append(f"{path}: required names {missing} not in properties")
    compiled = []
    for name, sub in properties.items():
        node = _compile(sub, f"{path}.properties.{name}", problems)
        if node is not None:
            compiled.append(Property(literal(name), node, name in required))
    if problems:
        return None
    minimal = b"{" + b",".join(p.key + b":" + p.schema.minimal for p in compiled if p.required) + b"}"
    return ObjectNode(path, minimal, tuple(compiled))


_COMPILERS = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _number,
    "number": _number,
    "boolean": lambda s, path, problems: LiteralNode(path, b"true", (b"true", b"false")),
    "null": lambda s, path, problems: LiteralNode(path, b"null", (b"null",)),
}


def minimum_holders(node: Node) -> list[str]:
    """Paths whose lower bounds (minLength, minItems, minimum) make the minimal document longer."""
    found: list[str] = []
    if isinstance(node, StringNode) and node.min_length > 1:
        found.append(f"{node.path} (minLength {node.min_length})")
    elif isinstance(node, NumberNode) and len(node.minimal) > 2:
        found.append(f"{node.path} (minimum {node.minimal.decode()})")
    elif isinstance(node, ArrayNode):
        if node.min_items > 0:
            found.append(f"{node.path} (minItems {node.min_items})")
            found.extend(minimum_holders(node.items))
    elif isinstance(node, ObjectNode):
        for prop in node.properties:
            if prop.required:
                found.extend(minimum_holders(prop.schema))
    return found
