"""The EVA2-CLIP vision tower of GLM-4V-9B (`transformer.vision.*`) and its adapter to the text width.

One fixed-size square image → (grid/2)^2 image embeddings between boi and eoi, all
divided by `scaling_factor`. Every Linear here may be quantized (the tower is ~4.3B
parameters of the real model's 13B); the patch convolution, the downsampling
convolution and the norms stay in the load dtype, and pixels are cast to the patch
convolution's own dtype, so the first op always sees matching input and weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worker.inference.families.glm4v_9b.config import Glm4v9bConfig, VisionSizes


class PatchEmbedding(nn.Module):
    """p x p stride-p convolution, row-major patches, a cls token in front, learned positions added."""

    def __init__(self, sizes: VisionSizes) -> None:
        super().__init__()
        self.proj = nn.Conv2d(sizes.in_channels, sizes.hidden_size, sizes.patch_size, stride=sizes.patch_size)
        self.cls_embedding = nn.Parameter(torch.zeros(1, sizes.hidden_size))
        self.position_embedding = nn.Embedding(sizes.num_positions, sizes.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.proj(pixels.to(self.proj.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.cls_embedding.expand(patches.shape[0], 1, -1)
        return torch.cat((cls, patches), dim=1) + self.position_embedding.weight.unsqueeze(0)


class VisionAttention(nn.Module):
    """Full (unmasked) multi-head attention; fused qkv split as (3, heads, head_dim), no rotary."""

    def __init__(self, sizes: VisionSizes) -> None:
        super().__init__()
        self.heads = sizes.num_heads
        self.query_key_value = nn.Linear(sizes.hidden_size, 3 * sizes.hidden_size)
        self.dense = nn.Linear(sizes.hidden_size, sizes.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query_key_value(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(q, k, v)
        return self.dense(context.transpose(1, 2).flatten(2))


class VisionMLP(nn.Module):
    """fc1 → exact (erf) GELU → fc2."""

    def __init__(self, sizes: VisionSizes) -> None:
        super().__init__()
        self.fc1 = nn.Linear(sizes.hidden_size, sizes.intermediate_size)
        self.fc2 = nn.Linear(sizes.intermediate_size, sizes.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class VisionLayer(nn.Module):
    """EVA2 "sandwich" block: the norms sit on the sublayer outputs (despite the name `input_layernorm`)."""

    def __init__(self, sizes: VisionSizes) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(sizes.hidden_size, eps=sizes.layer_norm_eps)
        self.attention = VisionAttention(sizes)
        self.mlp = VisionMLP(sizes)
        self.post_attention_layernorm = nn.LayerNorm(sizes.hidden_size, eps=sizes.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.input_layernorm(self.attention(x))
        return x + self.post_attention_layernorm(self.mlp(x))


class VisionTransformer(nn.Module):
    """`transformer.vision.transformer.layers.*`."""

    def __init__(self, sizes: VisionSizes) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VisionLayer(sizes) for _ in range(sizes.num_hidden_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class GLUAdapter(nn.Module):
    """`linear_proj` → LayerNorm → GELU, then a SwiGLU of the text model's FFN width."""

    def __init__(self, hidden_size: int, ffn_size: int) -> None:
        super().__init__()
        self.linear_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.norm1 = nn.LayerNorm(hidden_size)
        self.gate_proj = nn.Linear(hidden_size, ffn_size, bias=False)
        self.dense_h_to_4h = nn.Linear(hidden_size, ffn_size, bias=False)
        self.dense_4h_to_h = nn.Linear(ffn_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.linear_proj(x)))
        return self.dense_4h_to_h(F.silu(self.gate_proj(x)) * self.dense_h_to_4h(x))


class EVA2CLIPModel(nn.Module):
    """Pixels (batch, 3, S, S) → image embeddings (batch, (S/p/2)^2 + 2, text hidden), boi/eoi included."""

    def __init__(self, config: Glm4v9bConfig) -> None:
        super().__init__()
        sizes = VisionSizes.of(config)
        self.patch_embedding = PatchEmbedding(sizes)
        self.transformer = VisionTransformer(sizes)
        self.linear_proj = GLUAdapter(config.hidden_size, config.ffn_hidden_size)
        self.conv = nn.Conv2d(sizes.hidden_size, config.hidden_size, kernel_size=2, stride=2)
        self.boi = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.eoi = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.scaling_factor = sizes.scaling_factor
        self.grid = sizes.grid

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.transformer(self.patch_embedding(pixels))[:, 1:]  # the cls token only served attention
        grid = x.transpose(1, 2).unflatten(-1, (self.grid, self.grid))
        x = self.linear_proj(self.conv(grid.to(self.conv.weight.dtype)).flatten(2).transpose(1, 2))
        batch = x.shape[0]
        boi, eoi = self.boi.expand(batch, -1, -1).to(x.dtype), self.eoi.expand(batch, -1, -1).to(x.dtype)
        return torch.cat((boi, x, eoi), dim=1) / self.scaling_factor
