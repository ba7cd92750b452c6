"""GLM-4.1V/4.6V behind the `Engine` protocol, generating in the shared batching loop.

`run()` is called by many worker threads at once: each prepares its own request
(image, prompt, constraint) on its own thread, hands it to the loop, waits, and
decodes and checks its own answer; only generation happens on the loop's thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.settings import Settings
from worker.inference.batching.scheduler import Scheduler, Ticket
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import InferenceRequest, InferenceResult, ProgressCallback, TextCallback
from worker.inference.text_deltas import TextDeltas

log = logging.getLogger(__name__)

STREAM_INTERVAL_S = 0.1


@dataclass
class BatchPlan:
    """How many sequences run at once and how long each may get, sized for this device."""

    slots: int
    capacity: int
    prefill_tokens: int


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
        self, request: InferenceRequest, progress: ProgressCallback | None = None, on_text: TextCallback | None = None
    ) -> InferenceResult:
        prepared = self.base.prepare(request)
        ticket = self.scheduler.submit(
            Ticket(prepared.inputs, request.generation, prepared.matcher, prepared.guard, progress, request.interactive)
        )
        if on_text is None or prepared.schema is not None:  # JSON answers are re-serialised: nothing to stream
            generated = ticket.wait()
        else:  # new text is rendered and handed on here, on the caller's thread, never on the loop's
            deltas = TextDeltas(self.base.visible_text)
            while (generated := ticket.wait(STREAM_INTERVAL_S)) is None:
                if piece := deltas.update(list(ticket.generated)):
                    on_text(piece)
        assert generated is not None
        return self.base.finish(prepared, generated.token_ids, generated.finish_reason, generated.prompt_tokens)


def plan_batch(settings: Settings, model: Any) -> BatchPlan:
    """Slots from the memory left after loading, capped by `gpu_max_batch`.

    Each slot costs its KV cache (`gpu_max_seq_tokens` positions over every layer)
    plus its sampling state; a reserve covers prefill activations and graphs. On a
    small card the prefill budget shrinks (to `MIN_PREFILL_TOKENS`) before slots do:
    fewer images encoded at once costs little, fewer rows per step costs throughput.
    """
    import torch

    from worker.inference.batching.kv_slots import KVSlots

    layers, kv_heads, head_dim = kv_layout(model)
    dtype_bytes = torch.finfo(cache_dtype(model)).bits // 8
    per_token = KVSlots.bytes_per_token(layers, kv_heads, head_dim, dtype_bytes)
    vocab = model.get_output_embeddings().weight.shape[0]
    per_slot = settings.gpu_max_seq_tokens * per_token + vocab * SAMPLING_BYTES_PER_VOCAB_ENTRY
    slots, prefill = settings.gpu_max_batch, settings.gpu_prefill_tokens
    if model.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(model.device)
        limit = settings.gpu_memory_gib * 2**30 if settings.gpu_memory_gib else total * DEFAULT_MEMORY_SHARE
        in_use = total - free
        slots, prefill = fit_to_memory(min(free, limit - in_use), per_slot, slots, prefill)
        if slots < 1:
            raise ValueError(
                f"no room for even one {settings.gpu_max_seq_tokens}-token sequence: {in_use / 2**30:.1f} GiB in use "
                f"of a {limit / 2**30:.1f} GiB limit; raise VLMQ_GPU_MEMORY_GIB or lower VLMQ_GPU_MAX_SEQ_TOKENS"
            )
    return BatchPlan(slots=slots, capacity=settings.gpu_max_seq_tokens, prefill_tokens=prefill)


def fit_to_memory(room: float, per_slot: int, max_slots: int, prefill_tokens: int) -> tuple[int, int]:
    """Slots and prefill budget that fit `room` bytes; the budget halves first while slots are few."""

    def fitting(prefill: int) -> int:
        return int((room - PREFILL_RESERVE_BYTES - prefill * PREFILL_BYTES_PER_TOKEN) // per_slot)

    while fitting(prefill_tokens) < min(max_slots, SMALL_CARD_SLOTS) and prefill_tokens > MIN_PREFILL_TOKENS:
        prefill_tokens = max(MIN_PREFILL_TOKENS, prefill_tokens // 2)
    return min(max_slots, fitting(prefill_tokens)), prefill_tokens


# What sizing must leave free beyond the KV cache, fitted to the peaks bench/gpu_batch_bench.py
# records (bench/results/gpu_batch_bench_h100_nf4_*.json: peak against memory after start-up):
# per prefill token its activations (hidden 4,096, MLP 27,392 wide), new K/V and logits; per
# vocabulary entry of a slot, the logits and the float copies sampling makes.
PREFILL_RESERVE_BYTES = 1 << 29
PREFILL_BYTES_PER_TOKEN = 384 * 1024
SAMPLING_BYTES_PER_VOCAB_ENTRY = 24
DEFAULT_MEMORY_SHARE = 0.9
# Below this many slots, a smaller prefill budget is taken first; never below one standard image.
SMALL_CARD_SLOTS = 8
MIN_PREFILL_TOKENS = 2048


def kv_layout(model: Any) -> tuple[int, int, int]:
    """Layers, KV heads and head size of the text stack: the shape of one token's cached K/V."""
    config = model.config.text_config
    return config.num_hidden_layers, config.num_key_value_heads, config.hidden_size // config.num_attention_heads


def cache_dtype(model: Any) -> Any:
    """The dtype K/V come out in: the embeddings' (quantized weights report uint8)."""
    return model.get_input_embeddings().weight.dtype


def build_batched_engine(base: HFEngine, settings: Settings, on_fatal: Any = None) -> BatchedEngine:
    """Size the batch, allocate the cache, capture the decode graphs (CUDA) and start the loop."""
    from worker.inference.batching.decode_step import GlmDecodeStep
    from worker.inference.batching.kv_slots import KVSlots
    from worker.inference.batching.masks import BatchMasks
    from worker.inference.batching.prefill import GlmPrefill
    from worker.inference.batching.sampling import Sampler
    from worker.inference.batching.step_runner import CapturedSteps, EagerSteps

    model = base.model
    plan = plan_batch(settings, model)
    layers, kv_heads, head_dim = kv_layout(model)
    slots = KVSlots(layers, plan.slots, kv_heads, head_dim, plan.capacity, cache_dtype(model), model.device)
    step = GlmDecodeStep(model, slots)
    steps = EagerSteps(step)
    if model.device.type == "cuda":
        captured = CapturedSteps(step)
        try:
            captured.capture()
            steps = captured
        except RuntimeError as exc:  # a kernel that cannot be captured: slower, still correct
            log.warning("decode graphs could not be captured, stepping eagerly: %s", exc)
    vocab = model.get_output_embeddings().weight.shape[0]
    tokenizer = base.inputs.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else base.end_ids[0]
    scheduler = Scheduler(
        prefill=GlmPrefill(model, base.pixel_dtype, pad_id),
        steps=steps,
        slots=slots,
        sampler=Sampler(plan.slots, vocab, model.device),
        masks=BatchMasks(plan.slots, vocab, model.device),
        end_ids=base.end_ids,
        prefill_tokens=plan.prefill_tokens,
        on_fatal=on_fatal,
    )
    scheduler.start()
    log.info("batching %d sequences of up to %d tokens", plan.slots, plan.capacity)
    return BatchedEngine(base, scheduler, plan)
