"""The turns of one request, in the chat-message shape processors expect.

The image always sits in the first user turn, before that turn's text
(`user → image → text`); follow-up questions are text-only turns after the
earlier answers, so the model sees one conversation about one image.
"""

from __future__ import annotations

from typing import Any

from shared.request_rules import check_history
from worker.inference.engine_contract import InferenceError, Turn


def conversation(history: tuple[Turn, ...], instruction: str) -> list[Turn]:
    """Earlier turns (user/assistant pairs) followed by the new user instruction."""
    try:
        check_history([turn.role for turn in history])
    except ValueError as exc:
        raise InferenceError("invalid_history", str(exc)) from exc
    return [*history, Turn("user", instruction)]


def chat_messages(turns: list[Turn]) -> list[dict[str, Any]]:
    """HF chat messages with one image placeholder at the start of the first user turn."""
    messages: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}]
        if index == 0:
            content.insert(0, {"type": "image"})
        messages.append({"role": turn.role, "content": content})
    return messages
