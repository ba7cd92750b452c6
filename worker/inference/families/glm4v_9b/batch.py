"""GLM-4V-9B in the batching engine: its KV layout and its kernels over the engine's slots.

Imported by the family row, so nothing here imports torch until the kernels are built
(in the worker process, after fork).
"""

from __future__ import annotations

from typing import Any

from worker.inference.batching.kernels import BatchSupport, KernelContext, KVLayout, PrefillAndDecode
from worker.inference.batching.kv_slots import KVSlots


def kv_layout(model: Any) -> KVLayout:
    """Layers, key/value groups (multi-query attention: 2 for glm-4v-9b) and head size of the text stack."""
    config = model.config
    return KVLayout(config.num_layers, config.multi_query_group_num, config.kv_channels)


def chatglm_kernels(model: Any, slots: KVSlots, context: KernelContext) -> PrefillAndDecode:
    """The packed prefill and the decode step over one view of the text stack."""
    from worker.inference.families.glm4v_9b.batch_decode import ChatGlmDecodeStep
    from worker.inference.families.glm4v_9b.batch_layers import ChatGlmStack
    from worker.inference.families.glm4v_9b.batch_prefill import ChatGlmPackedPrefill

    stack = ChatGlmStack.of(model, context.ops)
    return PrefillAndDecode(ChatGlmPackedPrefill(model, slots, context, stack), ChatGlmDecodeStep(stack, slots))


BATCH_SUPPORT = BatchSupport(kv_layout=kv_layout, kernels=chatglm_kernels)
