"""The turns of one request, in the chat-message shape processors expect.

The image always sits in the first user turn, before that turn's text
(`user → image → text`); follow-up questions are text-only turns after the
earlier answers, so the model sees one conversation about one image.
"""

from __future__ import annotations

from typing import Any

from worker.inference.engine_contract import InferenceError, Turn


def conversation(history: tuple[Turn, ...], instruction: str) -> list[Turn]:
    """Earlier turns (user/assistant pairs) followed by the new user instruction."""
    for index, turn in enumerate(history):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn.role != expected:
            raise InferenceError("invalid_history", f"history turn {index} is {turn.role!r}, expected {expected!r}")
    if len(history) % 2:
        raise InferenceError("invalid_history", "history must end with an assistant turn")
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
