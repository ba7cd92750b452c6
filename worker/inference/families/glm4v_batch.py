"""GLM-4.1V/4.6V in the batching engine: its KV layout and its kernels over the engine's slots."""

from __future__ import annotations

from typing import Any

from worker.inference.batching.kernels import BatchSupport, KernelContext, KVLayout, PrefillAndDecode
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.families.glm4v_decode import GlmDecodeStep
from worker.inference.families.glm4v_layers import glm_layers, rotate
from worker.inference.families.glm4v_prefill import GlmPackedPrefill


def kv_layout(model: Any) -> KVLayout:
    """Layers, KV heads and head size of the text stack."""
    config = model.config.text_config
    return KVLayout(
        config.num_hidden_layers, config.num_key_value_heads, config.hidden_size // config.num_attention_heads
    )


def glm_kernels(model: Any, slots: KVSlots, context: KernelContext) -> PrefillAndDecode:
    """The packed prefill and the decode step, sharing one view of the layers (fused q/k/v once)."""
    layers = glm_layers(model)
    rotary = context.ops.compile(rotate())
    return PrefillAndDecode(
        GlmPackedPrefill(model, slots, context, layers, rotary),
        GlmDecodeStep(model, slots, context.ops, layers, rotary),
    )


BATCH_SUPPORT = BatchSupport(kv_layout=kv_layout, kernels=glm_kernels)
