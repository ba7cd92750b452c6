"""GLM-4.1V/4.6V text layers as the batched prefill and decode step use them.

Both are written against the model's own modules (its linears, quantized or not, and its
norm weights) rather than transformers' forward, which assumes a padded batch whose rows
share cache positions. Two things are prepared once here:
- q, k and v become one product where they are plain `nn.Linear`s (bf16, fp32): one
  weight read and one kernel instead of three; the modules' own weights become views
  of the fused one, so no second copy is kept and the modules still work;
- the rotary table: text tokens after the image have equal temporal/height/width
  positions, so GLM's 3-D rotary embedding is one row of a table per position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.inference.batching.fused_ops import FusedOps


@dataclass(frozen=True)
class GlmLayer:
    """One text layer: its products and the weights of its four norms."""

    qkv: Callable[[Any], tuple[Any, Any, Any]]
    o_proj: Any
    gate_up: Any
    down: Any
    input_norm: Any
    post_self_attn_norm: Any
    post_attention_norm: Any
    post_mlp_norm: Any


@dataclass(frozen=True)
class GlmTextShape:
    heads: int
    kv_heads: int
    head_dim: int
    scaling: float
    eps: float


def text_model(model: Any) -> Any:
    return model.model.language_model


def text_shape(model: Any) -> GlmTextShape:
    text = text_model(model)
    attention = text.layers[0].self_attn
    return GlmTextShape(
        heads=attention.num_heads,
        kv_heads=attention.num_key_value_heads,
        head_dim=attention.head_dim,
        scaling=attention.scaling,
        eps=text.layers[0].input_layernorm.variance_epsilon,
    )


def finish_layer(layer: GlmLayer, ops: FusedOps, eps: float, hidden: Any, attended: Any, next_norm: Any) -> Any:
    """The rest of a layer once attention is projected: sandwich norms, residuals, the MLP; returns
    the new hidden states and them normed by `next_norm` (the next layer's input norm, or the final one)."""
    hidden, x = ops.add_rms_norm(hidden, attended, layer.post_self_attn_norm, layer.post_attention_norm, eps)
    mlp = layer.down(ops.silu_mul(layer.gate_up(x)))
    return ops.add_rms_norm(hidden, mlp, layer.post_mlp_norm, next_norm, eps)


def next_norms(model: Any, layers: list[GlmLayer]) -> list[Any]:
    """The norm each layer's output is normed with: the next layer's input norm, then the final norm."""
    return [layer.input_norm for layer in layers[1:]] + [text_model(model).norm.weight]


def glm_layers(model: Any) -> list[GlmLayer]:
    """The text layers, q/k/v fused where the format allows."""
    text = text_model(model)
    if text.config.hidden_act != "silu":
        raise ValueError(f"the batched GLM step is written for a silu MLP, not {text.config.hidden_act!r}")
    return [
        GlmLayer(
            qkv=fused_qkv(layer.self_attn),
            o_proj=layer.self_attn.o_proj,
            gate_up=layer.mlp.gate_up_proj,
            down=layer.mlp.down_proj,
            input_norm=layer.input_layernorm.weight,
            post_self_attn_norm=layer.post_self_attn_layernorm.weight,
            post_attention_norm=layer.post_attention_layernorm.weight,
            post_mlp_norm=layer.post_mlp_layernorm.weight,
        )
        for layer in text.layers
    ]


def fused_qkv(attention: Any) -> Callable[[Any], tuple[Any, Any, Any]]:
    """`x → (q, k, v)` flat projections: one product over a fused weight for plain linears,
    three calls for quantized ones (bitsandbytes packs each weight on its own)."""
    import torch
    import torch.nn.functional as F

    parts = (attention.q_proj, attention.k_proj, attention.v_proj)
    if not all(type(part) is torch.nn.Linear and part.bias is not None for part in parts):
        q, k, v = parts
        return lambda x: (q(x), k(x), v(x))
    with torch.no_grad():
        weight = torch.cat([part.weight for part in parts])
        bias = torch.cat([part.bias for part in parts])
    sizes = [part.out_features for part in parts]
    start = 0
    for part, size in zip(parts, sizes, strict=True):
        part.weight = torch.nn.Parameter(weight[start : start + size], requires_grad=False)
        part.bias = torch.nn.Parameter(bias[start : start + size], requires_grad=False)
        start += size
    return lambda x: F.linear(x, weight, bias).split(sizes, dim=-1)


def rotary_table(model: Any, positions: int) -> tuple[Any, Any]:
    """cos and sin `(positions, rotary_dim)` for text positions from 0, by the model's own rotary module."""
    import torch

    text = text_model(model)
    weight = text.embed_tokens.weight
    ids = torch.arange(positions, device=weight.device).view(1, 1, -1)
    cos, sin = text.rotary_emb(torch.empty(0, dtype=weight.dtype, device=weight.device), position_ids=ids)
    return cos[0], sin[0]


def rotate() -> Callable[..., tuple[Any, Any]]:
    """GLM's rotary embedding (partial, interleaved), as transformers applies it."""
    from transformers.models.glm4v.modeling_glm4v import apply_rotary_pos_emb

    return apply_rotary_pos_emb
