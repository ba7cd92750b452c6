"""The default `attributes` schema, its bounds chosen together with the task's default budget.

Every string has a `maxLength` and the list a `maxItems`, so the largest answer the
schema allows is `LARGEST_ANSWER_BYTES` bytes of compact JSON when written in plain
ASCII. A token spells at least one byte, so that answer fits
`DEFAULT_ATTRIBUTES_BUDGET` tokens with room to spare: with the default settings a
model can fill every field to its bound and the object still closes on its own.
Answers in other scripts or with escapes can take more tokens per character; the
budget guard then closes the object in time (see README, "Structured attributes").
Lives in `shared/` because the web checks submissions against it (no torch here).
"""

from __future__ import annotations

from typing import Any

DEFAULT_PRODUCT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "minLength": 1, "maxLength": 32},
        "color": {"type": "string", "minLength": 1, "maxLength": 24},
        "material": {"type": "string", "minLength": 1, "maxLength": 32},
        "key_features": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 48},
            "minItems": 1,
            "maxItems": 4,
        },
        "marketing_copy": {"type": "string", "minLength": 1, "maxLength": 140},
    },
    "required": ["category", "color", "material", "key_features", "marketing_copy"],
    "additionalProperties": False,
}
# {"category":"…","color":"…","material":"…","key_features":["…","…","…","…"],"marketing_copy":"…"}
# with every string at its maxLength: 420 bytes of text, 89 of JSON punctuation and keys.
LARGEST_ANSWER_BYTES = 509
# The largest answer plus its end token, rounded up to a power of two.
DEFAULT_ATTRIBUTES_BUDGET = 512
