"""Prefill: several new GLM-4.1V/4.6V prompts through the model at once, packed, into their slots.

The prompts are concatenated into one sequence (no padding: every product runs on real
tokens only), their images go through the vision tower together, and each layer's
attention runs causally within each prompt, writing that prompt's K/V straight into its
slot (no intermediate cache to cut apart and copy). GLM's 3-D rotary positions are
computed on the caller's thread when the request is staged, as are the pixel dtype
cast and, on CUDA, the pinned copy that lets the upload overlap other work.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

from worker.inference.batching.kernels import KernelContext, Prefilled, attend_packed, upload
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.families.glm4v_layers import GlmLayer, finish_layer, next_norms, text_model, text_shape


class GlmPackedPrefill:
    """`stage()` per request on its caller's thread; `__call__` for a group on the loop's."""

    def __init__(self, model: Any, slots: KVSlots, context: KernelContext, layers: list[GlmLayer], rotate: Any) -> None:
        self.core = model.model
        self.text = text_model(model)
        self.head = model.lm_head
        self.layers = layers
        self.next_norms = next_norms(model, layers)
        self.shape = text_shape(model)
        self.slots = slots
        self.ops = context.ops
        self.pixel_dtype = context.pixel_dtype
        self.rotate = rotate
        self.image_token_id = model.config.image_token_id
        self.device = slots.keys[0].device

    def stage(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Processor outputs (batch 1) → token ids, 3-D positions and pixels ready to upload."""
        ids = inputs["input_ids"]
        types = inputs.get("mm_token_type_ids")
        if types is None:
            types = (ids == self.image_token_id).int()
        positions, _ = self.core.get_rope_index(
            ids, mm_token_type_ids=types, image_grid_thw=inputs.get("image_grid_thw"), attention_mask=None
        )
        staged = {"input_ids": ids, "positions": positions[:, 0]}
        if "pixel_values" in inputs:
            staged["pixel_values"] = inputs["pixel_values"].to(self.pixel_dtype)
            staged["image_grid_thw"] = inputs["image_grid_thw"]
        if self.device.type == "cuda":
            staged = {key: value.pin_memory() for key, value in staged.items()}
        return staged

    def __call__(self, inputs: list[dict[str, Any]], slots: list[int]) -> list[Prefilled]:
        import torch

        lengths = [int(item["input_ids"].shape[1]) for item in inputs]
        ids = torch.cat([upload(item["input_ids"][0], self.device) for item in inputs])
        positions = torch.cat([upload(item["positions"], self.device) for item in inputs], dim=1)
        hidden = self._embed(ids, [item for item in inputs if "pixel_values" in item])
        cos, sin = self.text.rotary_emb(hidden, position_ids=positions.unsqueeze(1))
        ends = list(accumulate(lengths))
        starts = [end - length for end, length in zip(ends, lengths, strict=True)]
        hidden = self._layers(hidden, cos, sin, list(zip(starts, lengths, slots, strict=True)))
        last = torch.tensor([end - 1 for end in ends], device=self.device)
        logits = self.head(hidden[last])
        return [
            Prefilled(
                logits=logits[index],
                next_position=int(item["positions"].max()) + 1,
                prompt_ids=ids[end - length : end],
                cached=length,
            )
            for index, (item, end, length) in enumerate(zip(inputs, ends, lengths, strict=True))
        ]

    def _embed(self, ids: Any, pictures: list[dict[str, Any]]) -> Any:
        """Token embeddings with the vision tower's features in the image placeholders."""
        import torch

        hidden = self.text.embed_tokens(ids)
        if not pictures:
            return hidden
        pixels = torch.cat([upload(item["pixel_values"], self.device) for item in pictures])
        grids = torch.cat([upload(item["image_grid_thw"], self.device) for item in pictures])
        features = torch.cat(self.core.get_image_features(pixels, grids).pooler_output).to(hidden.dtype)
        placeholders = sum(int((item["input_ids"] == self.image_token_id).sum()) for item in pictures)
        if features.shape[0] != placeholders:
            raise ValueError(f"the images gave {features.shape[0]} features for {placeholders} image tokens")
        return hidden.masked_scatter((ids == self.image_token_id).unsqueeze(-1), features)

    def _layers(self, hidden: Any, cos: Any, sin: Any, segments: list[tuple[int, int, int]]) -> Any:
        """The text stack over the packed tokens; returns the final-normed hidden states.

        `segments` are `(start, length, slot)` per prompt: attention is causal inside each.
        """

        shape, ops = self.shape, self.ops
        tokens = hidden.shape[0]
        x = ops.rms_norm(hidden, self.layers[0].input_norm, shape.eps)
        for layer, keys, values, next_norm in zip(
            self.layers, self.slots.keys, self.slots.values, self.next_norms, strict=True
        ):
            q, k, v = layer.qkv(x)
            q = q.view(1, tokens, shape.heads, shape.head_dim).transpose(1, 2)
            k = k.view(1, tokens, shape.kv_heads, shape.head_dim).transpose(1, 2)
            v = v.view(1, tokens, shape.kv_heads, shape.head_dim).transpose(1, 2)
            q, k = self.rotate(q, k, cos, sin)
            out = attend_packed(q, k, v, segments, keys, values, shape.scaling)
            attended = layer.o_proj(out.transpose(1, 2).reshape(tokens, shape.heads * shape.head_dim))
            hidden, x = finish_layer(layer, ops, shape.eps, hidden, attended, next_norm)
        return x
