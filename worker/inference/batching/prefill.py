"""Prefill: several new requests through the full model (vision tower included) at once.

Each request was turned into processor outputs by its own caller; here they are
left-padded into one batch, run through transformers' own forward (which encodes
the images and computes GLM's 3-D rotary positions), and each row's K/V is cut out
of the padded cache for its slot. What a row needs to join the decode batch comes
back per request: its K/V, the logits for its first new token, the rotary position
of that token and the prompt's token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Prefilled:
    layer_kv: list[tuple[Any, Any]]
    logits: Any
    next_position: int
    prompt_ids: Any

    @property
    def length(self) -> int:
        return int(self.prompt_ids.shape[0])


SEQUENCE_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
STACKED_KEYS = ("pixel_values", "image_grid_thw")


def pad_batch(inputs: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Left-pad per-request processor outputs (batch 1 each) into one batch."""
    import torch

    longest = max(item["input_ids"].shape[1] for item in inputs)
    batch: dict[str, Any] = {}
    for key in SEQUENCE_KEYS:
        if key not in inputs[0]:
            continue
        fill = pad_id if key == "input_ids" else 0
        rows = []
        for item in inputs:
            row = item[key][0]
            pad = row.new_full((longest - row.shape[0],), fill)
            rows.append(torch.cat([pad, row]))
        batch[key] = torch.stack(rows)
    for key in STACKED_KEYS:
        if key in inputs[0]:
            batch[key] = torch.cat([item[key] for item in inputs])
    return batch


class GlmPrefill:
    """Runs batched prefills on a loaded GLM-4.1V/4.6V model."""

    def __init__(self, model: Any, pixel_dtype: Any, pad_id: int) -> None:
        self.model = model
        self.pixel_dtype = pixel_dtype
        self.pad_id = pad_id

    def __call__(self, inputs: list[dict[str, Any]]) -> list[Prefilled]:
        from transformers import DynamicCache

        device = self.model.device
        batch = {key: value.to(device) for key, value in pad_batch(inputs, self.pad_id).items()}
        batch["pixel_values"] = batch["pixel_values"].to(self.pixel_dtype)
        core = self.model.model
        positions, _ = core.get_rope_index(
            batch["input_ids"],
            mm_token_type_ids=batch.get("mm_token_type_ids"),
            image_grid_thw=batch.get("image_grid_thw"),
            attention_mask=batch["attention_mask"],
        )
        cache = DynamicCache(config=self.model.config)
        output = core(**batch, position_ids=positions, past_key_values=cache, use_cache=True)
        logits = self.model.lm_head(output.last_hidden_state[:, -1])
        longest = batch["input_ids"].shape[1]
        rows = []
        for index, item in enumerate(inputs):
            start = longest - item["input_ids"].shape[1]
            rows.append(
                Prefilled(
                    layer_kv=[(layer.keys[index, :, start:], layer.values[index, :, start:]) for layer in cache.layers],
                    logits=logits[index],
                    next_position=int(positions[:, index, start:].max()) + 1,
                    prompt_ids=batch["input_ids"][index, start:],
                )
            )
        return rows
