"""GLM-4V-9B as a transformers model, loading the original checkpoint's weight names without remote code.

A `PreTrainedModel` + `GenerationMixin`, so `from_pretrained` (bf16, bitsandbytes
nf4/int8 through `quantization_config`) and `generate()` with transformers' own
`DynamicCache` work unchanged. `generate()` tracks position ids in the prompt's id
space (it adds one per new token), which is exactly GLM's rule for positions after
an image, and passes `pixel_values` on the prefill step only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from worker.inference.families.glm4v_9b.config import Glm4v9bConfig
from worker.inference.families.glm4v_9b.image_splice import splice_image
from worker.inference.families.glm4v_9b.text import Embedding, Encoder, RMSNorm, rotary_cos_sin
from worker.inference.families.glm4v_9b.vision import EVA2CLIPModel

ROTARY_BASE = 10000.0
CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
"""transformers 5.23 hands the KV cache to and from the model as `past_key_values`, later 5.x as `cache`."""


class ChatGLMTransformer(nn.Module):
    """The checkpoint's `transformer.*` tree: embedding, text encoder, output head, vision tower."""

    def __init__(self, config: Glm4v9bConfig) -> None:
        super().__init__()
        self.embedding = Embedding(config)
        self.encoder = Encoder(config)
        self.output_layer = nn.Linear(config.hidden_size, config.padded_vocab_size, bias=False)
        self.vision = EVA2CLIPModel(config)


def attention_mask_for(query_length: int, past_length: int, device: torch.device) -> torch.Tensor | None:
    """None where SDPA needs no explicit mask (prefill from empty, one-token step); else causal over the cache."""
    if past_length == 0 or query_length == 1:
        return None
    keys = torch.arange(past_length + query_length, device=device)
    queries = torch.arange(query_length, device=device).unsqueeze(-1) + past_length
    return keys <= queries


class Glm4v9bForConditionalGeneration(PreTrainedModel, GenerationMixin):
    """The original GLM-4V-9B (`THUDM/glm-4v-9b`), natively."""

    config_class = Glm4v9bConfig
    base_model_prefix = "transformer"
    main_input_name = "input_ids"
    _no_split_modules = ["GLMBlock", "VisionLayer"]
    _supports_sdpa = True
    # The original stores its rotary frequencies as a buffer; the table is recomputed in fp32 here.
    _keys_to_ignore_on_load_unexpected = [r"transformer\.rotary_pos_emb\.inv_freq"]

    def __init__(self, config: Glm4v9bConfig) -> None:
        config.check_layout()
        super().__init__(config)
        self.transformer = ChatGLMTransformer(config)
        self.rotary_base = ROTARY_BASE * config.rope_ratio
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Random weights for checkpoints built from a config (benchmarks): small normals, unit norms."""
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, EVA2CLIPModel):
            for parameter in (module.boi, module.eoi, module.patch_embedding.cls_embedding):
                nn.init.normal_(parameter, std=0.02)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.embedding.word_embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.transformer.output_layer

    def embed(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, pixel_values: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text embeddings with the image spliced in, and their position ids (see `image_splice`)."""
        embeds = self.transformer.embedding(input_ids)
        if pixel_values is None:
            return embeds, position_ids
        image = self.transformer.vision(pixel_values)
        return splice_image(embeds, input_ids, position_ids, image, self.config.boi_token_id)

    def forward(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values: Cache | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Logits for `input_ids` (plus the image where `pixel_values` is given).

        `cache` (`past_key_values` on transformers 5.23) is a transformers `Cache`.
        `position_ids` are in prompt-id space (0..L-1 for a fresh prompt, L, L+1, ... after);
        without them, a forward from an empty cache numbers the ids 0..L-1. Padded batches
        are not supported: `attention_mask` may only be all ones (`generate()` then drops it).
        """
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("GLM-4V-9B here runs unpadded rows only (attention_mask must be all ones)")
        cache = cache if cache is not None else past_key_values
        past_length = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            if past_length:
                raise ValueError("position_ids are required after the prefill: the cache counts image tokens apart")
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        if use_cache if use_cache is not None else self.config.use_cache:
            cache = cache if cache is not None else DynamicCache()
        else:
            cache = None
        hidden, positions = self.embed(input_ids, position_ids, pixel_values)
        cos, sin = rotary_cos_sin(positions, self.config.kv_channels, self.rotary_base, hidden.dtype)
        mask = attention_mask_for(hidden.shape[1], past_length, hidden.device)
        hidden = self.transformer.encoder(hidden, cos, sin, cache, mask)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return CausalLMOutputWithPast(logits=self.transformer.output_layer(hidden), **{CACHE_FIELD: cache})
