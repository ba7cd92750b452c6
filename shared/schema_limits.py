"""Bounds on what a client's JSON Schema (`params.schema` of `attributes`) may cost.

A schema is checked at submit time and used after generation, in the GPU worker, to
validate (and, with redaction, re-validate) the model's answer. A `pattern` with
catastrophic backtracking (`(a+)+$`) made that take minutes and the sweeper then ran
the job twice. So, at submit:

- the schema is at most `MAX_SCHEMA_DEPTH` levels deep and refers to nothing outside
  itself (`$ref` must start with `#`);
- every regular expression (`pattern`, the keys of `patternProperties`) is at most
  `MAX_PATTERN_CHARS` long, compiles under RE2 (a linear-time engine: no
  backreferences, no lookaround), repeats nothing more than `MAX_FREE_NESTING` times
  that itself repeats a variable number of times or branches (`(a+)+`, `(a|ab)*`:
  what makes Python's backtracking `re` exponential), and counts repeats only up to
  `MAX_REPEAT_COUNT`.

`output_validator` builds the validator for the worker side: the same JSON Schema
validator, with `pattern` and `patternProperties` matched by RE2, so checking an
answer takes time linear in its length whatever the pattern is.
"""

from __future__ import annotations

import re
import re._constants as sre  # the parsed form of a pattern has no public API
import re._parser as sre_parse
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

MAX_SCHEMA_DEPTH = 20
MAX_PATTERN_CHARS = 256
MAX_REPEAT_COUNT = 256
# A group repeated at most this often may hold variable parts: `(\d{4} ?){3}` backtracks at most 2^3 ways.
MAX_FREE_NESTING = 4

_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}
_NOT_LINEAR = {
    sre.GROUPREF: "a backreference",
    sre.GROUPREF_EXISTS: "a conditional group",
    sre.ASSERT: "a lookahead or lookbehind",
    sre.ASSERT_NOT: "a negative lookahead or lookbehind",
}


class SchemaTooCostly(ValueError):
    """The schema could make validation slow; the message names the rule."""


def check_schema_cost(schema: dict[str, Any]) -> None:
    """Raise `SchemaTooCostly` naming the first part of `schema` over a bound."""
    for path, node, depth in _walk(schema):
        if depth > MAX_SCHEMA_DEPTH:
            raise SchemaTooCostly(f"schema is nested more than {MAX_SCHEMA_DEPTH} levels deep (at {path})")
        if not isinstance(node, dict):
            continue
        for keyword in ("$ref", "$dynamicRef"):
            ref = node.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                raise SchemaTooCostly(f"schema {path}.{keyword} must point inside the schema (start with '#')")
        if isinstance(node.get("pattern"), str):
            check_pattern(node["pattern"], f"{path}.pattern")
        if isinstance(node.get("patternProperties"), dict):
            for key in node["patternProperties"]:
                check_pattern(key, f"{path}.patternProperties")


def _walk(schema: Any) -> Iterator[tuple[str, Any, int]]:
    """Every node of a JSON value with its path and depth, iteratively."""
    stack: list[tuple[str, Any, int]] = [("schema", schema, 1)]
    while stack:
        path, node, depth = stack.pop()
        yield path, node, depth
        if isinstance(node, dict):
            stack.extend((f"{path}.{key}", child, depth + 1) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(node))


def check_pattern(pattern: str, where: str) -> None:
    """Refuse a regular expression whose matching time could grow faster than linearly."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise SchemaTooCostly(f"{where} is longer than {MAX_PATTERN_CHARS} characters")
    try:
        _re2(pattern)
        parsed = sre_parse.parse(pattern)
    except (re.error, re2.error) as exc:
        raise SchemaTooCostly(f"{where} {pattern!r} is not a supported regular expression: {_text(exc)}") from None
    if (problem := _costly_part(parsed, inside_repeat=False)) is not None:
        raise SchemaTooCostly(f"{where} {pattern!r} has {problem}: checking answers against it could take minutes")


def _costly_part(items: Any, inside_repeat: bool) -> str | None:
    for op, arg in items:
        if op in _NOT_LINEAR:
            return _NOT_LINEAR[op]
        if op in _REPEATS:
            low, high, body = arg
            if high != sre.MAXREPEAT and high > MAX_REPEAT_COUNT:
                return f"a repeat count over {MAX_REPEAT_COUNT}"
            if inside_repeat and low != high:
                return "a repeat inside a repeat (e.g. (a+)+)"
            if (found := _costly_part(body, inside_repeat or high > MAX_FREE_NESTING)) is not None:
                return found
        elif op == sre.BRANCH:
            if inside_repeat:
                return "alternatives inside a repeat (e.g. (a|ab)*)"
            for branch in arg[1]:
                if (found := _costly_part(branch, inside_repeat)) is not None:
                    return found
        elif op == sre.SUBPATTERN:
            if (found := _costly_part(arg[3], inside_repeat)) is not None:
                return found
        elif op == sre.ATOMIC_GROUP and (found := _costly_part(arg, inside_repeat)) is not None:
            return found
    return None


@lru_cache(maxsize=256)
def _re2(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def _text(exc: Exception) -> str:
    message = exc.args[0] if exc.args else exc
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def _pattern(validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and _re2(pattern).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _re2(pattern).search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_OutputValidator = validators.extend(
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def output_validator(schema: dict[str, Any]) -> Validator:
    """A validator for answers to `schema` whose regular expressions run in linear time (RE2)."""
    return _OutputValidator(schema)


def validate_output(data: Any, schema: dict[str, Any]) -> None:
    """`jsonschema.validate(data, schema)` for a checked schema, in time linear in the answer's size."""
    error = best_match(output_validator(schema).iter_errors(data))
    if error is not None:
        raise error
