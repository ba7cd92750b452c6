"""GLM-4's tiktoken vocabulary (`tokenizer.model`) as a `tokenizers` fast tokenizer, without remote code.

A fast tokenizer is what the rest of the engine needs: llguidance builds its
constrained-JSON view from one, and decoding, special-token lists and streaming go
through the standard transformers API. tiktoken's BPE merges any adjacent pair whose
concatenation is a token, lowest rank first, and a piece that is a token as a whole
is taken as it is; the equivalent `tokenizers` BPE therefore has one merge per split
of each token into two tokens, ordered by the rank of the result, and `ignore_merges`.
Special-token strings in text are encoded as plain text (`encode_special_tokens`):
prompts put special tokens in by id only.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

# The pre-tokenizer regex of GLM-4's tokenizer (cl100k style).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
END_OF_TEXT = "<|endoftext|>"


def byte_symbols() -> dict[int, str]:
    """The byte-level alphabet: printable Latin-1 bytes stand for themselves, the others for code points 256+."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return symbols


def read_ranks(path: Path) -> dict[bytes, int]:
    """`tokenizer.model`: one base64 token and its rank per line."""
    ranks: dict[bytes, int] = {}
    for line in path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def bpe_model(ranks: dict[bytes, int]) -> models.BPE:
    """A BPE over byte-level symbols that merges exactly as tiktoken does with `ranks`."""
    symbols = byte_symbols()

    def spell(token: bytes) -> str:
        return "".join(symbols[byte] for byte in token)

    merges: list[tuple[int, int, int, str, str]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], spell(left), spell(right)))
    merges.sort()
    vocab = {spell(token): rank for token, rank in ranks.items()}
    return models.BPE(vocab=vocab, merges=[(left, right) for *_, left, right in merges], ignore_merges=True)


def special_tokens(folder: Path) -> list[str]:
    """The added tokens of `tokenizer_config.json`, in id order (they follow the vocabulary without gaps)."""
    config = json.loads((folder / "tokenizer_config.json").read_text())
    decoder = config["added_tokens_decoder"]
    return [decoder[key]["content"] for key in sorted(decoder, key=int)]


@lru_cache(maxsize=2)
def load_tokenizer(folder: str) -> PreTrainedTokenizerFast:
    """The tokenizer of a GLM-4V-9B checkpoint folder (built once per process: about 2 s)."""
    path = Path(folder)
    ranks = read_ranks(path / "tokenizer.model")
    backend = Tokenizer(bpe_model(ranks))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    specials = special_tokens(path)
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    first = backend.token_to_id(specials[0])
    if first != len(ranks):
        raise ValueError(f"{specials[0]} must follow the vocabulary (id {len(ranks)}), got {first}")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        padding_side="left",
        split_special_tokens=True,
        clean_up_tokenization_spaces=False,
    )
