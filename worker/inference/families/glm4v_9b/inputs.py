"""Prompt ids and pixels for GLM-4V-9B, as its own chat template and image preprocessing make them.

Prompt: `[gMASK] <sop>`, then per message its role token, the encoded `"\\n"`, the
image mark (`boi, <|endoftext|>, eoi`) on the message carrying the image, and the
encoded text; a bare `<|assistant|>` asks for the answer. Special tokens go in by id
only, so user text spelling `<|user|>` stays text. Pixels: a bicubic resize to the
tower's square input (aspect ratio not kept), scaled to [0, 1], CLIP-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from PIL import Image

from worker.inference.engine_contract import Turn
from worker.inference.families.base import InputBuilder

Role = Literal["system", "user", "assistant", "observation"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PROMPT_START = ("[gMASK]", "<sop>")
IMAGE_MARK = ("<|begin_of_image|>", "<|endoftext|>", "<|end_of_image|>")
ANSWER_ROLE = "<|assistant|>"


@dataclass(frozen=True)
class Message:
    """One chat message; `image` marks the (single) message the image belongs to."""

    role: Role
    text: str
    image: bool = False


def prompt_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """The template's token ids for `messages`, ending with the generation prompt."""
    if sum(message.image for message in messages) > 1:
        raise ValueError("GLM-4V-9B takes one image per conversation")

    def special(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    def text(value: str) -> list[int]:
        return tokenizer.encode(value, add_special_tokens=False)

    ids = [special(token) for token in PROMPT_START]
    for message in messages:
        ids += [special(f"<|{message.role}|>"), *text("\n")]
        if message.image:
            ids += [special(token) for token in IMAGE_MARK]
        ids += text(message.text)
    return [*ids, special(ANSWER_ROLE)]


def image_pixels(image: Image.Image, image_size: int) -> torch.Tensor:
    """(1, 3, S, S) float32: bicubic resize to S x S, /255, (x - mean) / std per channel."""
    resized = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
    pixels = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
    pixels = pixels.view(image_size, image_size, 3).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return ((pixels - mean) / std).unsqueeze(0)


class Glm4v9bInputs(InputBuilder):
    """`generate()` inputs for the native GLM-4V-9B model: the image goes with the first turn."""

    pixel_key = "pixel_values"

    def __init__(self, tokenizer: Any, image_size: int) -> None:
        self.tokenizer = tokenizer
        self.image_size = image_size

    def build(self, image: Image.Image, turns: list[Turn]) -> dict[str, Any]:
        """Token ids, attention mask and the image tensor for one request."""
        messages = [Message(turn.role, turn.text, image=index == 0) for index, turn in enumerate(turns)]
        ids = torch.tensor([prompt_ids(self.tokenizer, messages)])
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "pixel_values": image_pixels(image, self.image_size),
        }
