"""The checkpoint's own `config.json` keys (ChatGLM text stack plus `vision_config`), read without remote code.

Field names and defaults are those of the original `ChatGLMConfig`, so a downloaded
glm-4v-9b folder loads as it is; `auto_map` and the other keys this implementation
does not read are kept as plain attributes. Layout switches the original offers but
glm-4v-9b never uses are refused in `check_layout`, so a checkpoint this code would
compute wrongly fails loudly instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedConfig

# Switches that must hold the glm-4v-9b values: anything else is a different architecture.
REQUIRED_LAYOUT: dict[str, Any] = {
    "rmsnorm": True,
    "original_rope": True,
    "post_layer_norm": True,
    "apply_residual_connection_post_layernorm": False,
    "add_bias_linear": False,
    "add_qkv_bias": True,
    "multi_query_attention": True,
}


class Glm4v9bConfig(PreTrainedConfig):
    """GLM-4V-9B: ChatGLM (GLM-4) text stack with an EVA2-CLIP vision tower."""

    model_type = "chatglm"
    attribute_map = {"num_hidden_layers": "num_layers", "vocab_size": "padded_vocab_size"}
    """The standard names transformers' caches and generation read."""

    num_layers: int = 40
    padded_vocab_size: int = 151552
    hidden_size: int = 4096
    ffn_hidden_size: int = 13696
    kv_channels: int = 128
    num_attention_heads: int = 32
    multi_query_group_num: int = 2
    seq_length: int = 2048
    layernorm_epsilon: float = 1.5625e-07
    rope_ratio: float = 1.0
    rmsnorm: bool = True
    original_rope: bool = True
    post_layer_norm: bool = True
    apply_residual_connection_post_layernorm: bool = False
    add_bias_linear: bool = False
    add_qkv_bias: bool = True
    multi_query_attention: bool = True
    vision_config: dict[str, Any] | None = None
    boi_token_id: int = 151339
    eoi_token_id: int = 151340
    pad_token_id: int | None = 151329
    eos_token_id: int | list[int] | None = None
    tie_word_embeddings: bool = False
    use_cache: bool = True

    def check_layout(self) -> None:
        """Refuse configs whose layout differs from the one implemented here."""
        wrong = {key: getattr(self, key) for key, value in REQUIRED_LAYOUT.items() if getattr(self, key) != value}
        if wrong:
            raise ValueError(f"unsupported GLM-4V-9B layout (expected {REQUIRED_LAYOUT}): {wrong}")
        if self.vision_config is None:
            raise ValueError("a GLM-4V-9B config needs a vision_config")
        vision = VisionSizes.of(self)
        grid = vision.image_size // vision.patch_size
        if vision.num_positions != grid * grid + 1:
            raise ValueError(f"vision num_positions {vision.num_positions} must be (image_size/patch_size)^2 + 1")


@dataclass(frozen=True)
class VisionSizes:
    """The `vision_config` entries the EVA2-CLIP tower is built from."""

    hidden_size: int
    num_heads: int
    num_hidden_layers: int
    intermediate_size: int
    image_size: int
    patch_size: int
    num_positions: int
    layer_norm_eps: float
    scaling_factor: float
    in_channels: int = 3

    @classmethod
    def of(cls, config: Glm4v9bConfig) -> VisionSizes:
        vision = config.vision_config or {}
        return cls(**{name: vision[name] for name in cls.__dataclass_fields__ if name in vision})

    @property
    def grid(self) -> int:
        """Patches per side of the (square) input image."""
        return self.image_size // self.patch_size

    @property
    def image_tokens(self) -> int:
        """Embeddings one image adds to the text sequence: the 2x2-downsampled grid plus boi and eoi."""
        return (self.grid // 2) ** 2 + 2
