"""Offline byte-level BPE tokenizers carrying the real models' special tokens.

The hub is unreachable, so the tiny checkpoints need a tokenizer built from nothing.
The vocabulary is synthetic but valid BPE (every merge joins two existing tokens),
so any vocabulary size can be produced deterministically: a few hundred for tests,
the real 151,552 for the full-size GPU benchmark.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from worker.inference.placeholder.chat_templates import GLM4V_CHAT_TEMPLATE, QWEN2_VL_CHAT_TEMPLATE

Family = Literal["glm4v", "qwen2_vl"]


@dataclass(frozen=True)
class TokenSpec:
    """Added tokens of one model family, in the order the real vocabulary has them."""

    special: tuple[str, ...]
    plain: tuple[str, ...]
    eos: str
    chat_template: str


# GLM-4.6V: control tokens are special (dropped by skip_special_tokens); the reasoning
# and box markers are plain added tokens, as in the real tokenizer, so output
# cleaning has to remove them itself.
GLM4V_TOKENS = TokenSpec(
    special=(
        "<|endoftext|>",
        "[MASK]",
        "[gMASK]",
        "[sMASK]",
        "<sop>",
        "<eop>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
        "<|begin_of_image|>",
        "<|end_of_image|>",
        "<|begin_of_video|>",
        "<|end_of_video|>",
        "<|image|>",
        "<|video|>",
    ),
    plain=("<think>", "</think>", "<|begin_of_box|>", "<|end_of_box|>"),
    eos="<|endoftext|>",
    chat_template=GLM4V_CHAT_TEMPLATE,
)

QWEN2_VL_TOKENS = TokenSpec(
    special=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ),
    plain=(),
    eos="<|im_end|>",
    chat_template=QWEN2_VL_CHAT_TEMPLATE,
)

TOKEN_SPECS: dict[Family, TokenSpec] = {"glm4v": GLM4V_TOKENS, "qwen2_vl": QWEN2_VL_TOKENS}


def _synthetic_merges(count: int) -> Iterator[tuple[str, str]]:
    """Yield `count` merges growing lowercase words (and space-prefixed ones) a letter at a time."""
    letters = string.ascii_lowercase
    frontier = [*letters, "Ġ"]  # "Ġ" is the byte-level alphabet's space
    produced = 0
    while True:
        grown = []
        for left in frontier:
            for letter in letters:
                if produced == count:
                    return
                yield left, letter
                grown.append(left + letter)
                produced += 1
        frontier = grown


def build_tokenizer(family: Family, vocab_size: int) -> PreTrainedTokenizerFast:
    """A deterministic tokenizer of exactly `vocab_size` ids with the family's specials."""
    spec = TOKEN_SPECS[family]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    n_merges = vocab_size - len(alphabet) - len(spec.special) - len(spec.plain)
    if n_merges < 0:
        raise ValueError(f"vocab_size {vocab_size} is too small for family {family}")
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    merges = list(_synthetic_merges(n_merges))
    for left, right in merges:
        vocab[left + right] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.special])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.plain])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=spec.eos,
        pad_token="<|endoftext|>",
        chat_template=spec.chat_template,
    )
    if len(tokenizer) != vocab_size:
        raise AssertionError(f"built {len(tokenizer)} ids, wanted {vocab_size}")
    return tokenizer
