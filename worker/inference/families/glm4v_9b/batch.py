"""GLM-4V-9B in the batching engine: its KV layout and its kernels over the engine's slots.

Imported by the family row, so nothing here imports torch until the kernels are built
(in the worker process, after fork).
"""

from __future__ import annotations

from typing import Any

from worker.inference.batching.kernels import BatchSupport, KernelContext, KVLayout, Prefilled
from worker.inference.batching.kv_slots import KVSlots


def kv_layout(model: Any) -> KVLayout:
    """Layers, key/value groups (multi-query attention: 2 for glm-4v-9b) and head size of the text stack."""
    config = model.config
    return KVLayout(config.num_layers, config.multi_query_group_num, config.kv_channels)


class ChatGlmKernels:
    """The packed prefill and the decode step over one view of the text stack."""

    def __init__(self, model: Any, slots: KVSlots, context: KernelContext) -> None:
        from worker.inference.families.glm4v_9b.batch_decode import ChatGlmDecodeStep
        from worker.inference.families.glm4v_9b.batch_layers import ChatGlmStack
        from worker.inference.families.glm4v_9b.batch_prefill import ChatGlmPackedPrefill

        stack = ChatGlmStack.of(model, context.ops)
        self._prefill = ChatGlmPackedPrefill(model, slots, context, stack)
        self._decode = ChatGlmDecodeStep(stack, slots)

    def stage(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return self._prefill.stage(inputs)

    def prefill(self, inputs: list[dict[str, Any]], slots: list[int]) -> list[Prefilled]:
        return self._prefill(inputs, slots)

    def decode(self, tokens: Any, positions: Any, lengths: Any, batch: int, window: int) -> Any:
        return self._decode(tokens, positions, lengths, batch, window)


BATCH_SUPPORT = BatchSupport(kv_layout=kv_layout, kernels=ChatGlmKernels)
