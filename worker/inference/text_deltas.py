"""New pieces of an answer's visible text while it is generated, for streaming clients.

Each update renders all tokens so far exactly as the final answer is rendered
(special tokens, reasoning and control characters removed, personal data redacted)
and hands on only what was added since the last piece. The last `holdback`
characters wait: a phone number or an email still being written would otherwise go
out before redaction can recognise it, and a token that cuts a character in half
would go out as garbage. Text that changes behind what was sent (a reasoning block
opening) pauses the pieces; the finished result is always the authority.
"""

from __future__ import annotations

from collections.abc import Callable

HOLDBACK_CHARS = 40


class TextDeltas:
    """Turns a growing list of token ids into new pieces of visible text."""

    def __init__(self, render: Callable[[list[int]], str], holdback: int = HOLDBACK_CHARS) -> None:
        self._render = render
        self._holdback = holdback
        self.sent = ""

    def update(self, token_ids: list[int]) -> str:
        """The text added since the last call ('' when there is none yet)."""
        text = self._render(token_ids)
        stable = text[: max(0, len(text) - self._holdback)]
        if len(stable) <= len(self.sent) or not stable.startswith(self.sent):
            return ""
        piece = stable[len(self.sent) :]
        self.sent = stable
        return piece
