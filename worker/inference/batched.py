"""GLM-4.1V/4.6V behind the `Engine` protocol, generating in the shared batching loop.

`run()` is called by many worker threads at once: each prepares its own request
(image, prompt, constraint) on its own thread, hands it to the loop, waits, and
decodes and checks its own answer; only generation happens on the loop's thread.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.settings import Settings
from worker.inference.batching.kernels import BatchSupport, KernelContext, KVLayout
from worker.inference.batching.memory_plan import BatchPlan, bytes_per_slot, fit_to_memory, usable_memory
from worker.inference.batching.rows import Ticket
from worker.inference.batching.scheduler import Scheduler
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import (
    InferenceRequest,
    InferenceResult,
    ProgressCallback,
    StopSignal,
    TextCallback,
)
from worker.inference.text_deltas import TextDeltas

log = logging.getLogger(__name__)

STREAM_INTERVAL_S = 0.1


class BatchedEngine:
    """Prompts and answers from `HFEngine`; generation from a `Scheduler` shared by all callers."""

    def __init__(self, base: HFEngine, scheduler: Scheduler, plan: BatchPlan) -> None:
        self.base = base
        self.scheduler = scheduler
        self.plan = plan

    @property
    def model_name(self) -> str:
        return self.base.model_name

    @property
    def is_placeholder(self) -> bool:
        return self.base.is_placeholder

    @property
    def max_batch(self) -> int:
        return self.plan.slots

    def run(
        self,
        request: InferenceRequest,
        progress: ProgressCallback | None = None,
        on_text: TextCallback | None = None,
        stop: StopSignal | None = None,
    ) -> InferenceResult:
        prepared = self.base.prepare(request)
        inputs = self.scheduler.runner.stage(prepared.inputs)  # positions, casts, pinning: here, not on the loop
        ticket = self.scheduler.submit(
            Ticket(inputs, request.generation, prepared.matcher, prepared.guard, progress, request.interactive)
        )
        if stop is not None:  # a cancel or time limit frees the row's slot at the loop's next step
            stop.listen(lambda reason: self.scheduler.cancel(ticket, reason))
        if on_text is None or prepared.schema is not None:  # JSON answers are re-serialised: nothing to stream
            generated = ticket.wait()
        else:  # new text is rendered and handed on here, on the caller's thread, never on the loop's
            deltas = TextDeltas(self.base.visible_text)
            while (generated := ticket.wait(STREAM_INTERVAL_S)) is None:
                if piece := deltas.update(list(ticket.generated)):
                    on_text(piece)
        assert generated is not None
        return self.base.finish(prepared, generated.token_ids, generated.finish_reason, generated.prompt_tokens)


def plan_batch(settings: Settings, model: Any, layout: KVLayout) -> BatchPlan:
    """Slots from the memory left after loading, capped by `gpu_max_batch` (see `memory_plan`)."""
    import torch

    per_slot = bytes_per_slot(layout, settings.gpu_max_seq_tokens, cache_bytes(model), vocab_size(model))
    slots, prefill = settings.gpu_max_batch, settings.gpu_prefill_tokens
    if model.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(model.device)
        room = usable_memory(total, free, settings.gpu_memory_gib)
        slots, prefill = fit_to_memory(room, per_slot, slots, prefill)
        if slots < 1:
            raise ValueError(
                f"no room for even one {settings.gpu_max_seq_tokens}-token sequence: {(total - free) / 2**30:.1f} GiB "
                f"in use, {room / 2**30:.1f} GiB left under the limit; raise VLMQ_GPU_MEMORY_GIB or lower "
                "VLMQ_GPU_MAX_SEQ_TOKENS"
            )
    return BatchPlan(slots=slots, capacity=settings.gpu_max_seq_tokens, prefill_tokens=prefill)


def cache_dtype(model: Any) -> Any:
    """The dtype K/V come out in: the embeddings' (quantized weights report uint8)."""
    return model.get_input_embeddings().weight.dtype


def cache_bytes(model: Any) -> int:
    import torch

    return torch.finfo(cache_dtype(model)).bits // 8


def vocab_size(model: Any) -> int:
    return model.get_output_embeddings().weight.shape[0]


def build_batched_engine(
    base: HFEngine, batching: BatchSupport, settings: Settings, on_fatal: Any = None
) -> BatchedEngine:
    """Size the batch, allocate the cache, build the family's kernels, capture decode graphs (CUDA), start the loop."""
    from worker.inference.batching.fused_ops import FusedOps
    from worker.inference.batching.gpu_runner import GpuRunner
    from worker.inference.batching.kv_slots import KVSlots
    from worker.inference.batching.masks import BatchMasks
    from worker.inference.batching.sampling import Sampler
    from worker.inference.batching.step_runner import CapturedSteps, EagerSteps

    model = base.model
    layout = batching.kv_layout(model)
    plan = plan_batch(settings, model, layout)
    slots = KVSlots(
        layout.layers, plan.slots, layout.kv_heads, layout.head_dim, plan.capacity, cache_dtype(model), model.device
    )
    ops = FusedOps.for_device(model.device, cache_dtype(model))
    kernels = batching.kernels(model, slots, KernelContext(base.pixel_dtype, ops))
    steps = EagerSteps(kernels.decode, slots)
    if model.device.type == "cuda":
        captured = CapturedSteps(kernels.decode, slots)
        try:
            captured.capture()
            steps = captured
        except RuntimeError as exc:  # a kernel that cannot be captured: slower, still correct
            log.warning("decode graphs could not be captured, stepping eagerly: %s", exc)
    vocab = vocab_size(model)
    runner = GpuRunner(
        kernels,
        slots,
        steps,
        Sampler(plan.slots, vocab, model.device),
        BatchMasks(plan.slots, vocab, model.device),
    )
    scheduler = Scheduler(runner=runner, end_ids=base.end_ids, prefill_tokens=plan.prefill_tokens, on_fatal=on_fatal)
    scheduler.start()
    log.info("batching %d sequences of up to %d tokens", plan.slots, plan.capacity)
    return BatchedEngine(base, scheduler, plan)
