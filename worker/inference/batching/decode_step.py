"""One decode step of the GLM-4.1V/4.6V text stack over a batch of slots.

transformers' own forward assumes every row of a batch sits at the same cache
position; here each slot has its own length and rotary position, so the step is
written against the model's own modules (its quantized linears, norms, rotary
table and head), with the cache in `KVSlots`. Attention reads the grouped K/V
directly (the query heads of one KV head form the "query length" of one attention
call) instead of repeating K/V for every query head, which would grow with the batch.
Text tokens after the image have equal temporal/height/width positions, so GLM's
3-D rotary embedding reduces to one position per row.
"""

from __future__ import annotations

from typing import Any

from worker.inference.batching.kv_slots import KVSlots


class GlmDecodeStep:
    """`step(tokens, positions, lengths, batch, window) → logits (batch, vocab)`.

    `tokens`, `positions` and `lengths` are 1-D tensors over all slots: the token to
    feed, its rotary position, and how many tokens the slot's cache already holds
    (where this token's K/V is written). Only the first `batch` slots are computed,
    and attention reads the first `window` cache positions.
    """

    def __init__(self, model: Any, slots: KVSlots) -> None:
        import torch
        from transformers.models.glm4v.modeling_glm4v import apply_rotary_pos_emb

        self.text = model.model.language_model
        self.head = model.lm_head
        self.slots = slots
        attention = self.text.layers[0].self_attn
        self.heads = attention.num_heads
        self.kv_heads = attention.num_key_value_heads
        self.head_dim = attention.head_dim
        self.scaling = attention.scaling
        self.apply_rotary = apply_rotary_pos_emb
        device = slots.keys[0].device
        self.row_index = torch.arange(slots.slots, device=device)
        self.span = torch.arange(slots.capacity, device=device)

    def __call__(self, tokens: Any, positions: Any, lengths: Any, batch: int, window: int) -> Any:
        import torch.nn.functional as F

        text, b = self.text, batch
        hidden = text.embed_tokens(tokens[:b]).unsqueeze(1)
        cos, sin = text.rotary_emb(hidden, position_ids=positions[:b].view(1, b, 1).expand(3, b, 1))
        rows = self.row_index[:b]
        write = lengths[:b]
        visible = (self.span[:window].unsqueeze(0) <= write.unsqueeze(1)).view(b, 1, 1, window)
        group = self.heads // self.kv_heads
        for layer, keys, values in zip(text.layers, self.slots.keys, self.slots.values, strict=True):
            attention = layer.self_attn
            residual = hidden
            x = layer.input_layernorm(hidden)
            q = attention.q_proj(x).view(b, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attention.k_proj(x).view(b, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attention.v_proj(x).view(b, self.kv_heads, self.head_dim)
            q, k = self.apply_rotary(q, k, cos, sin)
            keys[rows, :, write] = k[:, :, 0]
            values[rows, :, write] = v
            out = F.scaled_dot_product_attention(
                q.reshape(b, self.kv_heads, group, self.head_dim),
                keys[:b, :, :window],
                values[:b, :, :window],
                attn_mask=visible,
                scale=self.scaling,
            )
            out = attention.o_proj(out.reshape(b, 1, self.heads * self.head_dim))
            hidden = residual + layer.post_self_attn_layernorm(out)
            residual = hidden
            hidden = residual + layer.post_mlp_layernorm(layer.mlp(layer.post_attention_layernorm(hidden)))
        return self.head(text.norm(hidden)[:, 0])
