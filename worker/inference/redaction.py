"""Removing personal data (phones, Chinese ID numbers, emails) from model output.

Product photos show shipping labels, business cards and receipts; the text a shop
publishes must not carry them. Only counts per type are reported, never the values.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import jsonschema

# Order matters: an ID number contains digit runs a phone pattern could match.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    (
        "id_card",
        re.compile(
            r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
            r"(?![0-9A-Za-z])"
        ),
    ),
    (
        "phone",
        re.compile(  # Chinese mobile, optionally +86 and 3-4-4 grouped
            r"(?<![\w+])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\w)"
        ),
    ),
    (
        "phone",
        re.compile(  # international / landline with separators: +1 415-555-0100, (020) 1234 5678
            r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}(?!\w)"
        ),
    ),
)


def marker(kind: str) -> str:
    """What replaces one redacted value."""
    return f"[redacted:{kind}]"


def redact_text(text: str) -> tuple[str, Counter[str]]:
    """`text` with every match replaced by its marker, and the number of matches per type."""
    counts: Counter[str] = Counter()
    for kind, pattern in PATTERNS:
        text, n = pattern.subn(marker(kind), text)
        counts[kind] += n
    return text, +counts


def _redact_values(value: Any, counts: Counter[str]) -> Any:
    if isinstance(value, str):
        cleaned, found = redact_text(value)
        counts.update(found)
        return cleaned
    if isinstance(value, list):
        return [_redact_values(item, counts) for item in value]
    if isinstance(value, dict):
        return {key: _redact_values(item, counts) for key, item in value.items()}
    return value


def _set_path(data: Any, path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def redact_data(data: Any, schema: dict[str, Any]) -> tuple[Any, Counter[str]]:
    """Redact every string inside `data`, then re-fit strings a marker made too long.

    A marker can be longer than what it replaced; strings over their schema's
    `maxLength` are cut to it (the cut can only drop marker text, never reveal data).
    """
    counts: Counter[str] = Counter()
    redacted = _redact_values(data, counts)
    if not counts:
        return data, counts
    validator = jsonschema.validators.validator_for(schema)(schema)
    while True:
        too_long = [e for e in validator.iter_errors(redacted) if e.validator == "maxLength"]
        if not too_long:
            return redacted, counts
        for error in too_long:
            _set_path(redacted, list(error.absolute_path), error.instance[: error.validator_value])


def report(counts: Counter[str]) -> list[dict[str, Any]]:
    """`InferenceResult.redactions`: types and counts only."""
    return [{"type": kind, "count": n} for kind, n in sorted(counts.items())]
