"""The GLM-4 (ChatGLM) text stack: pre-norm blocks of grouped-query attention and SwiGLU.

Module and weight names follow the checkpoint (`self_attention.query_key_value`,
`mlp.dense_h_to_4h`, ...). The pieces the batching engine's steps (`batch_layers`) need
are functions of their own: `rms_norm`, `rotary_cos_sin` for explicit position ids, and
`split_rotated` (the fused q/k/v output as rotated heads), so a step over the engine's KV
slots writes k/v there and runs its own attention before `SelfAttention.dense`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache

from worker.inference.families.glm4v_9b.config import Glm4v9bConfig


class RMSNorm(nn.Module):
    """y = w * x / sqrt(mean(x^2) + eps): mean of squares and product in fp32, result in the input dtype."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """ChatGLM's RMSNorm (unlike GLM-4.6V's, the weight multiplies the fp32 product before the cast back)."""
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return (weight * (x * torch.rsqrt(variance + eps))).to(x.dtype)


def rotary_cos_sin(
    position_ids: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (batch, seq, head_dim / 4) for GLM's half-head rotary.

    Angles are computed in fp32 and then rounded to the model dtype, as the original
    does; image tokens share one position id and so one rotation.
    """
    rotary_dim = head_dim // 2
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.float32, device=position_ids.device) / rotary_dim
    theta = 1.0 / (base**exponents)
    angles = position_ids.float().unsqueeze(-1) * theta
    return torch.cos(angles).to(dtype), torch.sin(angles).to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first half of each head in interleaved pairs (x0, x1), (x2, x3), ...; the rest passes.

    `x` is (batch, seq, heads, head_dim); `cos`/`sin` are (batch, seq, head_dim / 4).
    """
    rotary_dim = 2 * cos.shape[-1]
    rotated, passed = x[..., :rotary_dim], x[..., rotary_dim:]
    pairs = rotated.unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    turned = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)
    return torch.cat((turned, passed), dim=-1)


def split_rotated(
    fused: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int, groups: int, head_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused q/k/v output (batch, seq, (heads + 2 groups) d) as q (batch, heads, seq, d) and k, v
    (batch, groups, seq, d), q and k rotated: a plain split, all query heads, then the key groups, then the values.
    A function of its own so the batched step can compile it apart from the (maybe quantized) projection."""
    q, k, v = fused.split([heads * head_dim, groups * head_dim, groups * head_dim], dim=-1)
    q = apply_rotary(q.unflatten(-1, (heads, head_dim)), cos, sin)
    k = apply_rotary(k.unflatten(-1, (groups, head_dim)), cos, sin)
    v = v.unflatten(-1, (groups, head_dim))
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


class SelfAttention(nn.Module):
    """Grouped-query attention: one fused q/k/v projection (with bias), `dense` out (no bias)."""

    def __init__(self, config: Glm4v9bConfig, layer_index: int) -> None:
        super().__init__()
        self.layer_index = layer_index
        self.heads = config.num_attention_heads
        self.groups = config.multi_query_group_num
        self.head_dim = config.kv_channels
        qkv_width = (self.heads + 2 * self.groups) * self.head_dim
        self.query_key_value = nn.Linear(config.hidden_size, qkv_width, bias=True)
        self.dense = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=False)

    def project(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (batch, heads, seq, d) and k, v (batch, groups, seq, d), q and k rotated (see `split_rotated`)."""
        return split_rotated(self.query_key_value(x), cos, sin, self.heads, self.groups, self.head_dim)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) v, each key group serving heads/groups consecutive query heads.

        `mask` is None for a prefill from an empty cache (causal) or a one-token step (all keys);
        otherwise a boolean (query, key) mask.
        """
        repeat = self.heads // self.groups
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        causal = mask is None and q.shape[2] > 1
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.dense(context.transpose(1, 2).flatten(2))

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: Cache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        q, k, v = self.project(x, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_index)
        return self.attend(q, k, v, mask)


class SwiGLU(nn.Module):
    """`dense_h_to_4h` gives [gate | up] halves; out = `dense_4h_to_h`(SiLU(gate) * up)."""

    def __init__(self, hidden_size: int, ffn_size: int) -> None:
        super().__init__()
        self.dense_h_to_4h = nn.Linear(hidden_size, 2 * ffn_size, bias=False)
        self.dense_4h_to_h = nn.Linear(ffn_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.dense_h_to_4h(x).chunk(2, dim=-1)
        return self.dense_4h_to_h(F.silu(gate) * up)


class GLMBlock(nn.Module):
    """x + Attn(RMSNorm(x)), then + MLP(RMSNorm(.))."""

    def __init__(self, config: Glm4v9bConfig, layer_index: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.layernorm_epsilon)
        self.self_attention = SelfAttention(config, layer_index)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.layernorm_epsilon)
        self.mlp = SwiGLU(config.hidden_size, config.ffn_hidden_size)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: Cache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.self_attention(self.input_layernorm(x), cos, sin, cache, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Encoder(nn.Module):
    """The blocks and the final RMSNorm (`transformer.encoder.*`)."""

    def __init__(self, config: Glm4v9bConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(GLMBlock(config, index) for index in range(config.num_layers))
        self.final_layernorm = RMSNorm(config.hidden_size, config.layernorm_epsilon)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: Cache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, cos, sin, cache, mask)
        return self.final_layernorm(x)


class Embedding(nn.Module):
    """`transformer.embedding.word_embeddings`: no scaling, no norm."""

    def __init__(self, config: Glm4v9bConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)
