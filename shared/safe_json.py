"""JSON from clients that every part of vlmq can store, echo and parse back.

Python's `json` accepts what later breaks: `NaN`/`Infinity` (echoed as bare `NaN`,
which no strict parser reads; PostgreSQL's JSON refuses it), lone UTF-16 surrogates
such as `"\\ud800"` (they cannot be encoded to UTF-8, so the webhook body, the CSV row or
the database insert fails later), NUL characters (PostgreSQL text cannot hold them) and
nesting deep enough to exhaust the recursion limit. All are refused here, at submit.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_DEPTH = 32


class UnsafeJson(ValueError):
    """The value cannot be accepted; the message names where and why."""


def loads(text: str | bytes) -> Any:
    """`json.loads` that refuses what `check` refuses; `json.JSONDecodeError` for malformed text."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnsafeJson(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep") from None
    check(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not a JSON number: send a finite number or null")


def check(value: Any, where: str = "") -> None:
    """Raise `UnsafeJson` for the first unsafe part of a parsed value (iteratively: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise UnsafeJson(f"{path or 'the JSON'} is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(item, str):
            check_text(item, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJson(f"{_named(path)}{item} is not a JSON number: send a finite number or null")
        elif isinstance(item, dict):
            for key, child in item.items():
                check_text(str(key), _join(path, "<key>"))
                stack.append((child, _join(path, str(key)), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, _join(path, str(index)), depth + 1) for index, child in enumerate(item))


def check_text(text: str, where: str = "") -> None:
    """Refuse NUL characters and lone surrogates in one string."""
    if "\x00" in text:
        raise UnsafeJson(f"{_named(where)}contains a NUL character (\\u0000), which cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJson(
            f"{_named(where)}contains a lone UTF-16 surrogate (e.g. \\ud800 without its pair), which is not valid text"
        ) from None


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _named(path: str) -> str:
    return f"{path}: " if path else ""
