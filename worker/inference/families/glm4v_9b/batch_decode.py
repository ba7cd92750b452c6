"""One decode step of the GLM-4V-9B text stack over a batch of slots (captured as CUDA graphs).

Each slot has its own cache length and its own position id (in prompt-id space: after an
image they differ), so the rotary angles are a lookup in a table made once by the model's
own `rotary_cos_sin`. Attention reads the grouped K/V once: the query heads of one key
group form the "query length" of one attention call, the cache positions each row may
see given by a boolean mask. No host syncs and no branching on tensor values.
"""

from __future__ import annotations

from typing import Any

from worker.inference.batching.kv_slots import KVSlots
from worker.inference.families.glm4v_9b.batch_layers import ChatGlmStack


class ChatGlmDecodeStep:
    """`step(tokens, positions, lengths, batch, window) → logits (batch, vocab)` (see `BatchKernels.decode`)."""

    def __init__(self, stack: ChatGlmStack, slots: KVSlots) -> None:
        import torch

        self.stack = stack
        self.slots = slots
        device, dtype = slots.keys[0].device, slots.keys[0].dtype
        cos, sin = stack.cos_sin(torch.arange(slots.capacity + 1, device=device).unsqueeze(0), dtype)
        self.cos, self.sin = cos[0], sin[0]
        self.row_index = torch.arange(slots.slots, device=device)
        self.span = torch.arange(slots.capacity, device=device)

    def __call__(self, tokens: Any, positions: Any, lengths: Any, batch: int, window: int) -> Any:
        import torch.nn.functional as F

        stack, b = self.stack, batch
        rows, write = self.row_index[:b], lengths[:b]
        visible = (self.span[:window].unsqueeze(0) <= write.unsqueeze(1)).view(b, 1, 1, window)
        query_shape = (b, stack.groups, stack.heads // stack.groups, stack.head_dim)

        def attend(index: int, q: Any, k: Any, v: Any) -> Any:
            keys, values = self.slots.keys[index], self.slots.values[index]
            keys[rows, :, write] = k[:, :, 0]
            values[rows, :, write] = v[:, :, 0]
            out = F.scaled_dot_product_attention(
                q.reshape(query_shape), keys[:b, :, :window], values[:b, :, :window], attn_mask=visible
            )
            return out.reshape(b, 1, stack.heads * stack.head_dim)

        hidden = stack.embed(tokens[:b]).unsqueeze(1)
        cos, sin = self.cos[positions[:b]].unsqueeze(1), self.sin[positions[:b]].unsqueeze(1)
        return stack.head(stack.run(hidden, attend, cos, sin)[:, 0])
