"""The original GLM-4V-9B (remote code, no HF processor): prompt and pixels by hand.

Its tokenizer marks the image with `<|begin_of_image|><|endoftext|><|end_of_image|>`
right after the first `<|user|>\\n`, and its model takes a fixed-size CLIP-normalised
image as `images=`. The assembly is a pure function so it is tested offline; the
remote-code model itself cannot be downloaded here, so this path is untested
against real weights. GLM-4V-9B answers directly (no reasoning mode); like
the newer GLM rows, stray `<think>` blocks are removed from its answers.
"""

from __future__ import annotations

from typing import Any, Literal

from PIL import Image

from shared.settings import Settings
from worker.inference.engine_contract import Turn
from worker.inference.families.base import InputBuilder, ModelFamily

Segment = tuple[Literal["special", "text"], str]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_MARK = (("special", "<|begin_of_image|>"), ("special", "<|endoftext|>"), ("special", "<|end_of_image|>"))


def glm4v_9b_segments(turns: list[Turn]) -> list[Segment]:
    """`[gMASK]<sop>`, then `<|role|>\\n` + text per turn (image mark in the first), then `<|assistant|>`."""
    segments: list[Segment] = [("special", "[gMASK]"), ("special", "<sop>")]
    for index, turn in enumerate(turns):
        segments += [("special", f"<|{turn.role}|>"), ("text", "\n")]
        if index == 0:
            segments += IMAGE_MARK
        segments.append(("text", turn.text))
    segments.append(("special", "<|assistant|>"))
    return segments


def segments_to_ids(segments: list[Segment], tokenizer: Any) -> list[int]:
    """Special tokens by id lookup (never parsed from text), text by plain encoding."""
    ids: list[int] = []
    for kind, value in segments:
        if kind == "special":
            ids.append(tokenizer.convert_tokens_to_ids(value))
        else:
            ids += tokenizer.encode(value, add_special_tokens=False)
    return ids


def glm4v_9b_pixels(image: Image.Image, image_size: int) -> Any:
    """(1, 3, S, S) float tensor: bicubic resize to the tower's square input, CLIP-normalised."""
    import torch

    resized = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
    pixels = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
    pixels = pixels.view(image_size, image_size, 3).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return ((pixels - mean) / std).unsqueeze(0)


class LegacyGlm4vInputs(InputBuilder):
    """Builds `generate()` inputs for GLM-4V-9B's remote-code model."""

    pixel_key = "images"

    def __init__(self, tokenizer: Any, image_size: int) -> None:
        self.tokenizer = tokenizer
        self.image_size = image_size

    def build(self, image: Image.Image, turns: list[Turn]) -> dict[str, Any]:
        """Token ids, attention mask and the image tensor for one request."""
        import torch

        ids = torch.tensor([segments_to_ids(glm4v_9b_segments(turns), self.tokenizer)])
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "images": glm4v_9b_pixels(image, self.image_size),
        }


def matches(config: dict[str, Any]) -> bool:
    """GLM-4V-9B's remote code calls itself `chatglm`; the vision config tells it from text-only ChatGLM."""
    return config.get("model_type") == "chatglm" and "vision_config" in config


def inputs(source: str, config: Any, settings: Settings) -> InputBuilder:
    from transformers import AutoTokenizer

    vision = config.vision_config
    image_size = vision["image_size"] if isinstance(vision, dict) else vision.image_size
    return LegacyGlm4vInputs(AutoTokenizer.from_pretrained(source, trust_remote_code=True), image_size)


FAMILY = ModelFamily(
    name="glm4v_legacy",
    matches=matches,
    auto_class="AutoModelForCausalLM",
    inputs=inputs,
    needs_remote_code=True,
    strips_reasoning=True,
)
