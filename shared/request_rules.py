"""The rules a request must keep, written once for both sides of the queue.

The web refuses a request that breaks one with a 400 (pydantic turns the `ValueError`
into a validation error); the worker checks the same rule again on what it is handed
and reports an `InferenceError`, so the API and the engine cannot drift apart. A new
task starts here: its name in `Task`, then its template in `worker/inference/prompts.py`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, get_args

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from shared.schema_limits import check_schema_cost
from shared.schema_plan import SUPPORTED_SUMMARY, UnsupportedSchema, compile_schema, normalized

Task = Literal["describe", "ocr", "attributes", "copy", "ask"]
TASKS: tuple[str, ...] = get_args(Task)
CopyChannel = Literal["title", "selling_points", "social_post", "livestream_script"]
COPY_CHANNELS: tuple[str, ...] = get_args(CopyChannel)
DEFAULT_COPY_CHANNEL: CopyChannel = "title"

MAX_NEW_TOKENS = 2048
"""The most tokens one answer may take: the ceiling of `params.max_new_tokens`, of chat `max_tokens` and of
the server defaults (`VLMQ_MAX_NEW_TOKENS`, `VLMQ_ATTRIBUTES_MAX_NEW_TOKENS`)."""
MAX_SCHEMA_BYTES = 16 * 1024


def check_ask_prompt(task: str, prompt: str | None) -> None:
    """`ask` answers a question, so it needs one that is not blank."""
    if task == "ask" and not (prompt and prompt.strip()):
        raise ValueError("task 'ask' needs a prompt: the question to answer")


def check_history(roles: Sequence[str]) -> None:
    """Earlier turns alternate user, assistant, ... and end with an answer: the new question comes last."""
    for index, role in enumerate(roles):
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            raise ValueError(f"history[{index}] must be a {expected} turn: turns alternate, starting with user")
    if len(roles) % 2:
        raise ValueError("history must end with an assistant turn (the question goes in prompt)")


def check_object_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JSON Schema that constrained decoding can follow: valid, small, and describing an object."""
    if value is None:
        return None
    if len(json.dumps(value)) > MAX_SCHEMA_BYTES:
        raise ValueError(f"schema must be at most {MAX_SCHEMA_BYTES} bytes of JSON")
    check_schema_cost(value)  # depth and pattern cost first: a SchemaTooCostly is a ValueError, a 400
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from None
    if value.get("type") != "object":
        raise ValueError('schema must describe a JSON object ("type": "object")')
    try:
        compile_schema(normalized(value))  # the budget guard must be able to close it (issue 13)
    except UnsupportedSchema as exc:
        raise ValueError(f"schema is not supported for attributes: {exc}. Supported: {SUPPORTED_SUMMARY}") from None
    return value
