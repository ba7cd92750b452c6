"""Prefill: several new GLM-4V-9B prompts through the model at once, packed, into their slots.

The images of the group go through the EVA2-CLIP tower together; each prompt's ids are
embedded and its image spliced in by the model's own `splice_image`, which also gives the
original's position ids (the image counts as three positions however many features it
has). The spliced prompts are concatenated (no padding), and each block's attention runs
causally within each prompt, writing that prompt's K/V straight into its slot.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

from worker.inference.batching.kernels import CACHE_TOKENS, KernelContext, Prefilled, attend_packed, upload
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.families.glm4v_9b.batch_layers import ChatGlmStack
from worker.inference.families.glm4v_9b.config import VisionSizes
from worker.inference.families.glm4v_9b.image_splice import splice_image

IMAGE_MARK_IDS = 3
"""`boi, placeholder, eoi`: the prompt ids the tower's output replaces."""


class ChatGlmPackedPrefill:
    """`stage()` per request on its caller's thread; `__call__` for a group on the loop's."""

    def __init__(self, model: Any, slots: KVSlots, context: KernelContext, stack: ChatGlmStack) -> None:
        self.vision = model.transformer.vision
        self.boi_id = model.config.boi_token_id
        self.image_tokens = VisionSizes.of(model.config).image_tokens
        self.stack = stack
        self.slots = slots
        self.pixel_dtype = context.pixel_dtype
        self.device = slots.keys[0].device

    def stage(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """`Glm4v9bInputs` outputs (batch 1) → ids and pixels ready to upload, and the cache positions they fill."""
        ids = inputs["input_ids"]
        staged = {"input_ids": ids}
        cached = ids.shape[1]
        if "pixel_values" in inputs:
            staged["pixel_values"] = inputs["pixel_values"].to(self.pixel_dtype)
            cached += self.image_tokens - IMAGE_MARK_IDS
        if self.device.type == "cuda":
            staged = {key: value.pin_memory() for key, value in staged.items()}
        return {**staged, CACHE_TOKENS: cached}

    def __call__(self, inputs: list[dict[str, Any]], slots: list[int]) -> list[Prefilled]:
        import torch

        ids = [item["input_ids"].to(self.device, non_blocking=True) for item in inputs]
        hidden, positions = self._embed(ids, inputs)
        lengths = [part.shape[1] for part in hidden]
        ends = list(accumulate(lengths))
        segments = [(end - length, length, slot) for end, length, slot in zip(ends, lengths, slots, strict=True)]
        hidden, positions = torch.cat(hidden, dim=1), torch.cat(positions, dim=1)
        cos, sin = self.stack.cos_sin(positions, hidden.dtype)
        x = self.stack.run(hidden, lambda index, q, k, v: self._attend(index, q, k, v, segments), cos, sin)
        logits = self.stack.head(x[0, [end - 1 for end in ends]])
        return [
            Prefilled(logits=logits[index], next_position=prompt.shape[1], prompt_ids=prompt[0], cached=length)
            for index, (prompt, length) in enumerate(zip(ids, lengths, strict=True))
        ]

    def _embed(self, ids: list[Any], inputs: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        """Per prompt: its embeddings `(1, n, width)` with the image spliced in, and their position ids `(1, n)`."""
        import torch

        pictures = [item["pixel_values"] for item in inputs if "pixel_values" in item]
        features = iter(self.vision(torch.cat([upload(p, self.device) for p in pictures])) if pictures else [])
        hidden, positions = [], []
        for prompt, item in zip(ids, inputs, strict=True):
            embeds = self.stack.embed(prompt)
            numbered = torch.arange(prompt.shape[1], device=self.device).unsqueeze(0)
            if "pixel_values" in item:
                embeds, numbered = splice_image(embeds, prompt, numbered, next(features).unsqueeze(0), self.boi_id)
            hidden.append(embeds)
            positions.append(numbered)
        return hidden, positions

    def _attend(self, index: int, q: Any, k: Any, v: Any, segments: list[tuple[int, int, int]]) -> Any:
        """Causal attention inside each `(start, length, slot)` segment, its K/V written into the slot."""
        keys, values = self.slots.keys[index], self.slots.values[index]
        return attend_packed(q, k, v, segments, keys, values).transpose(1, 2).flatten(2)
