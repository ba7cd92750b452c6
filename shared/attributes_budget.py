"""Whether an `attributes` job can be kept inside its token budget, decided at submit time.

The worker's budget guard closes the object before the budget runs out, which works
as long as the schema's smallest document fits the budget. The web has no
tokenizer, so it counts that document in bytes: a byte-level tokenizer spells any
text in at most one token per byte, so bytes are an upper bound on tokens.
"""

from __future__ import annotations

from typing import Any

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.schema_plan import compile_schema, minimum_holders, normalized
from shared.settings import Settings

# The smallest answer is quoted in the error when it is short enough to read.
_SHOWN_BYTES = 160


def job_budget(task: str, params: dict[str, Any], settings: Settings) -> int:
    """The max_new_tokens a job runs with: its own, else its task's default."""
    explicit = params.get("max_new_tokens")
    if explicit is not None:
        return int(explicit)
    return settings.attributes_max_new_tokens if task == "attributes" else settings.max_new_tokens


def budget_shortfall(schema: dict[str, Any] | None, budget: int) -> str | None:
    """Why a job with `schema` (None: the product default) cannot finish in `budget` tokens; None if it can.

    The schema must already be supported (`JobParams` refuses the others).
    """
    plan = compile_schema(normalized(schema if schema is not None else DEFAULT_PRODUCT_SCHEMA))
    cost = len(plan.minimal)
    if cost <= budget:
        return None
    holders = minimum_holders(plan) if schema is not None else []
    lower = f", or lower the minimums of {', '.join(holders)}" if holders else ""
    whose = "the schema" if schema is not None else "the default product schema"
    shown = f" ({plan.minimal.decode()})" if cost <= _SHOWN_BYTES else ""
    return (
        f"max_new_tokens is {budget} but the smallest answer {whose} allows takes up to {cost} tokens{shown}: "
        f"raise params.max_new_tokens to at least {cost}{lower}"
    )
