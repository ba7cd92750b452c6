"""Removing personal data (phone numbers, Chinese ID numbers, emails) from model output.

Product photos show shipping labels, business cards and receipts; the text a shop
publishes must not carry them. Only counts per type are reported, never the values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import phonenumbers
import re2

from shared.schema_limits import output_validator

# Numbers written without a country code are read as Chinese ones (the shops' home market);
# any number with `+<country code>` is recognised whatever its country.
DEFAULT_REGION = "CN"

# RE2 matches in time linear in the text, whatever the model wrote.
_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ID_CARD = re2.compile(r"\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]\b")


def marker(kind: str) -> str:
    """What replaces one redacted value."""
    return f"[redacted:{kind}]"


def redact_text(text: str) -> tuple[str, Counter[str]]:
    """`text` with every email, ID card number and phone number replaced by its marker, and counts per type.

    Phone numbers are found by libphonenumber's matcher (`phonenumbers`), which accepts
    only numbers valid for a real numbering plan: SKUs, EANs, model numbers and
    resolutions (`SKU 12-3456-7890`, `Model 2024-1080-2160`) are product data, not phones.
    Emails go first, then ID numbers, whose digit runs could pass for phone numbers.
    """
    counts: Counter[str] = Counter()
    text, counts["email"] = _EMAIL.subn(marker("email"), text)
    text, counts["id_card"] = _ID_CARD.subn(marker("id_card"), text)
    text, counts["phone"] = _redact_phones(text)
    return text, +counts


def _redact_phones(text: str) -> tuple[str, int]:
    spans = [(match.start, match.end) for match in phonenumbers.PhoneNumberMatcher(text, DEFAULT_REGION)]
    for start, end in reversed(spans):
        text = text[:start] + marker("phone") + text[end:]
    return text, len(spans)


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
    validator = output_validator(schema)
    while True:
        too_long = [e for e in validator.iter_errors(redacted) if e.validator == "maxLength"]
        if not too_long:
            return redacted, counts
        for error in too_long:
            _set_path(redacted, list(error.absolute_path), error.instance[: error.validator_value])


def report(counts: Counter[str]) -> list[dict[str, Any]]:
    """`InferenceResult.redactions`: types and counts only."""
    return [{"type": kind, "count": n} for kind, n in sorted(counts.items())]
