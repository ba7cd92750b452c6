"""One decode step of the GLM-4.1V/4.6V text stack over a batch of slots.

Each slot has its own length and rotary position, so the step is written against the
model's own modules (`glm4v_layers`) with the cache in the engine's `KVSlots`. Attention
reads the grouped K/V once: the query heads of one KV head form the "query length" of one
attention call, instead of K/V repeated for every query head (which grows with the batch).
The elementwise work between products runs as the engine's fused ops, the rotary embedding
is a table lookup, and the last layer's output is normed by the fused op that ends it.
"""

from __future__ import annotations

from typing import Any

from worker.inference.batching.fused_ops import FusedOps
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.families.glm4v_layers import (
    GlmLayer,
    finish_layer,
    next_norms,
    rotary_table,
    text_model,
    text_shape,
)


class GlmDecodeStep:
    """`step(tokens, positions, lengths, batch, window) → logits (batch, vocab)` (see `BatchKernels.decode`)."""

    def __init__(self, model: Any, slots: KVSlots, ops: FusedOps, layers: list[GlmLayer], rotate: Any) -> None:
        import torch

        text = text_model(model)
        self.embed = text.embed_tokens
        self.head = model.lm_head
        self.layers = layers
        self.next_norms = next_norms(model, layers)
        self.shape = text_shape(model)
        self.slots = slots
        self.ops = ops
        self.rotate = rotate
        self.cos, self.sin = rotary_table(model, slots.capacity + 1)
        device = slots.keys[0].device
        self.row_index = torch.arange(slots.slots, device=device)
        self.span = torch.arange(slots.capacity, device=device)

    def __call__(self, tokens: Any, positions: Any, lengths: Any, batch: int, window: int) -> Any:
        import torch.nn.functional as F

        b, shape, ops = batch, self.shape, self.ops
        group = shape.heads // shape.kv_heads
        hidden = self.embed(tokens[:b])
        cos, sin = self.cos[positions[:b]], self.sin[positions[:b]]
        rows, write = self.row_index[:b], lengths[:b]
        visible = (self.span[:window].unsqueeze(0) <= write.unsqueeze(1)).view(b, 1, 1, window)
        x = ops.rms_norm(hidden, self.layers[0].input_norm, shape.eps)
        for layer, keys, values, next_norm in zip(
            self.layers, self.slots.keys, self.slots.values, self.next_norms, strict=True
        ):
            q, k, v = layer.qkv(x)
            q, k = self.rotate(
                q.view(b, shape.heads, shape.head_dim), k.view(b, shape.kv_heads, shape.head_dim), cos, sin
            )
            keys[rows, :, write] = k
            values[rows, :, write] = v.view(b, shape.kv_heads, shape.head_dim)
            out = F.scaled_dot_product_attention(
                q.reshape(b, shape.kv_heads, group, shape.head_dim),
                keys[:b, :, :window],
                values[:b, :, :window],
                attn_mask=visible,
                scale=shape.scaling,
            )
            attended = layer.o_proj(out.reshape(b, shape.heads * shape.head_dim))
            hidden, x = finish_layer(layer, ops, shape.eps, hidden, attended, next_norm)
        return self.head(x)
