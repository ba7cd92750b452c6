"""GLM-4V-9B's text layers as the batched prefill and decode step use them.

Both run the model's own modules (its linears, quantized or not, and its norm weights)
over the engine's KV slots instead of transformers' cache. The elementwise work is the
model's own functions (`text.rms_norm`, `text.split_rotated`), compiled on CUDA through
the engine's `FusedOps.compile`: ChatGLM's RMSNorm multiplies the weight before the cast
back (GLM-4.6V's after), and its blocks add the residual before the norm (no sandwich
norms), so the engine's GLM-4.6V norms would not give the same bits in bf16. The MLP's
`silu(gate) * up` is the engine's `silu_mul`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.inference.batching.fused_ops import FusedOps
from worker.inference.families.glm4v_9b.text import rms_norm, rotary_cos_sin, split_rotated


def add_rms_norm(residual: Any, x: Any, weight: Any, eps: float) -> tuple[Any, Any]:
    """`residual + x`, and that sum normed for the next product (a ChatGLM block's residual then norm)."""
    hidden = residual + x
    return hidden, rms_norm(hidden, weight, eps)


@dataclass(frozen=True)
class ChatGlmStack:
    """The text stack's modules and the compiled elementwise functions between them."""

    blocks: list[Any]
    """The model's `GLMBlock`s."""
    next_norms: list[Any]
    """The norm weight each block's output is normed with: the next block's input norm, then the final norm."""
    embed: Any
    head: Any
    eps: float
    heads: int
    groups: int
    head_dim: int
    rotary_base: float
    norm: Callable[..., Any]
    add_norm: Callable[..., Any]
    split: Callable[..., tuple[Any, Any, Any]]
    """fused q/k/v output, cos, sin → rotated q (batch, heads, seq, d), k and v (batch, groups, seq, d)."""
    silu_mul: Callable[..., Any]

    @classmethod
    def of(cls, model: Any, ops: FusedOps) -> ChatGlmStack:
        config, transformer = model.config, model.transformer
        blocks = list(transformer.encoder.layers)
        heads, groups, head_dim = config.num_attention_heads, config.multi_query_group_num, config.kv_channels

        def split(fused: Any, cos: Any, sin: Any) -> tuple[Any, Any, Any]:
            return split_rotated(fused, cos, sin, heads, groups, head_dim)

        return cls(
            blocks=blocks,
            next_norms=[block.input_layernorm.weight for block in blocks[1:]]
            + [transformer.encoder.final_layernorm.weight],
            embed=transformer.embedding.word_embeddings,
            head=transformer.output_layer,
            eps=config.layernorm_epsilon,
            heads=heads,
            groups=groups,
            head_dim=head_dim,
            rotary_base=model.rotary_base,
            norm=ops.compile(rms_norm),
            add_norm=ops.compile(add_rms_norm),
            split=ops.compile(split),
            silu_mul=ops.silu_mul,
        )

    def cos_sin(self, positions: Any, dtype: Any) -> tuple[Any, Any]:
        """cos and sin `(batch, seq, head_dim / 4)` for position ids `(batch, seq)`, as the model computes them."""
        return rotary_cos_sin(positions, self.head_dim, self.rotary_base, dtype)

    def run(self, hidden: Any, attend: Callable[[int, Any, Any, Any], Any], cos: Any, sin: Any) -> Any:
        """Every block over `hidden` (batch, seq, width); returns the final-normed hidden states.

        `attend(index, q, k, v)` is the caller's attention for block `index` (it writes k and v
        into the slots) and returns its output `(batch, seq, heads * head_dim)`, before `dense`.
        """
        x = self.norm(hidden, self.blocks[0].input_layernorm.weight, self.eps)
        for index, (block, next_norm) in enumerate(zip(self.blocks, self.next_norms, strict=True)):
            attention = block.self_attention
            q, k, v = self.split(attention.query_key_value(x), cos, sin)
            attended = attention.dense(attend(index, q, k, v))
            hidden, x = self.add_norm(hidden, attended, block.post_attention_layernorm.weight, self.eps)
            mlp = block.mlp.dense_4h_to_h(self.silu_mul(block.mlp.dense_h_to_4h(x)))
            hidden, x = self.add_norm(hidden, mlp, next_norm, self.eps)
        return x
