"""The JSONL input file of an OpenAI batch: one chat-completion request per line.

Checked when the file is uploaded (so a mistake is reported at once, naming its
line) and read again when a batch is created from it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import safe_json
from web.api.chat_input import ChatRequest
from web.errors import ApiError, describe_validation_error

CHAT_ENDPOINT = "/v1/chat/completions"
# A line of JSON Lines (split at "\n" only: a JSON string may hold U+2028), from its first non-blank character.
_FILLED_LINE = re.compile(r"\S[^\n]*")


class BatchRequestLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: Literal["/v1/chat/completions"]
    body: ChatRequest


def parse_batch_file(data: bytes, max_items: int) -> list[BatchRequestLine]:
    """Every request of the file, or a 400 naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("invalid_file", "a batch file must be UTF-8 JSON Lines") from None
    requests: list[BatchRequestLine] = []
    seen: set[str] = set()
    number, counted_to = 1, 0
    # Only the lines holding something are visited: a file of 90 MB of blank lines is refused in well under a second.
    for line in _FILLED_LINE.finditer(text):
        number += text.count("\n", counted_to, line.start())
        counted_to = line.start()
        request = _parse_line(number, line.group())
        if request.custom_id in seen:
            raise ApiError("invalid_file", f"line {number}: custom_id {request.custom_id!r} is used twice")
        seen.add(request.custom_id)
        requests.append(request)
        if len(requests) > max_items:
            raise ApiError(
                "too_many_items", f"a batch file may hold at most {max_items} requests (VLMQ_MAX_BATCH_ITEMS)"
            )
    if not requests:
        raise ApiError("invalid_file", "the batch file holds no requests: one JSON object per line")
    return requests


def _parse_line(number: int, line: str) -> BatchRequestLine:
    try:
        request = BatchRequestLine.model_validate(safe_json.loads(line))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            detail = describe_validation_error(exc)
        else:
            detail = str(exc) if isinstance(exc, safe_json.UnsafeJson) else "not a JSON object"
        raise ApiError(
            "invalid_file",
            f"line {number}: {detail}; each line is "
            f'{{"custom_id": ..., "method": "POST", "url": "{CHAT_ENDPOINT}", "body": {{chat completion request}}}}',
        ) from None
    if request.body.stream:
        raise ApiError("invalid_file", f"line {number}: body.stream: batch requests cannot stream")
    return request
