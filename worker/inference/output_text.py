"""Turning decoded model output into the text a user sees.

Reasoning models may emit `<think>...</think>` even with thinking off (removed with
`strip_think` for the families whose row says so), GLM wraps answers in
`<|begin_of_box|>` markers, and random-weight models emit any token: none of that
belongs in a product listing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")  # keeps \t and \n


def strip_think(text: str) -> str:
    """Remove reasoning: complete blocks, text before a stray `</think>`, an unclosed `<think>` tail."""
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text:  # the prompt opened the block (GLM-4.1V-Thinking style)
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:  # cut off while still reasoning: nothing after it is an answer
        text = text.split("<think>", 1)[0]
    return text


def strip_tokens(text: str, tokens: Iterable[str]) -> str:
    """Delete every occurrence of the given special/added token strings."""
    ordered = sorted({t for t in tokens if t}, key=len, reverse=True)
    if not ordered:
        return text
    return re.sub("|".join(map(re.escape, ordered)), "", text)


def clean_output(text: str, special_tokens: Iterable[str]) -> str:
    """User-visible answer: control tokens and control characters removed, trimmed."""
    return _CONTROL.sub("", strip_tokens(text, special_tokens)).strip()
