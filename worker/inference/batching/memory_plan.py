"""How much of the card the batching engine takes: the weights' format, slots and prefill budget.

Quantization exists to fit a card; on a card with room it costs speed (bitsandbytes nf4
dequantizes every weight before each product: a 128-row decode step's 160 text linears
took 17.6 ms in nf4 against 6.9 ms in bf16 on the H100, `../shared/reference/gpu-probe.md`).
So `quantization="auto"` takes bf16 where the bf16 weights leave room for a full batch,
and nf4 (the ≤ 10 GiB promise) where they do not. Slots come from what is left after
loading; on a small card the prefill budget shrinks before the slots do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worker.inference.batching.kernels import KVLayout

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
# `auto` takes bf16 only where it leaves room for this many slots (or `gpu_max_batch`, if fewer):
# below that, the rows a step shares matter more than the format's speed.
BF16_MIN_SLOTS = 64
BF16_BYTES_PER_PARAMETER = 2

Precision = Literal["nf4", "bf16"]


@dataclass(frozen=True)
class BatchPlan:
    """How many sequences run at once and how long each may get, sized for this device."""

    slots: int
    capacity: int
    prefill_tokens: int


def bytes_per_slot(layout: KVLayout, seq_tokens: int, cache_bytes: int, vocab: int) -> int:
    """One slot: its K/V for `seq_tokens` positions over every layer, plus its sampling state."""
    per_token = 2 * layout.layers * layout.kv_heads * layout.head_dim * cache_bytes
    return seq_tokens * per_token + vocab * SAMPLING_BYTES_PER_VOCAB_ENTRY


def fit_to_memory(room: float, per_slot: int, max_slots: int, prefill_tokens: int) -> tuple[int, int]:
    """Slots and prefill budget that fit `room` bytes; the budget halves first while slots are few."""

    def fitting(prefill: int) -> int:
        return int((room - PREFILL_RESERVE_BYTES - prefill * PREFILL_BYTES_PER_TOKEN) // per_slot)

    while fitting(prefill_tokens) < min(max_slots, SMALL_CARD_SLOTS) and prefill_tokens > MIN_PREFILL_TOKENS:
        prefill_tokens = max(MIN_PREFILL_TOKENS, prefill_tokens // 2)
    return min(max_slots, fitting(prefill_tokens)), prefill_tokens


def choose_precision(
    room: float, parameters: int, per_slot_bf16: int, max_slots: int, prefill_tokens: int
) -> Precision:
    """bf16 when its weights (2 bytes a parameter) leave `room` for a full batch, else nf4.

    `room` is the memory the worker may use before anything is loaded; `per_slot_bf16` a
    slot's cost with a bf16 cache (nf4 caches in bf16 too), 0 for a family that does not batch.
    """
    left = room - parameters * BF16_BYTES_PER_PARAMETER
    if per_slot_bf16 <= 0:  # a family without batching: one request at a time, one prefill's room
        return "bf16" if left >= PREFILL_RESERVE_BYTES + prefill_tokens * PREFILL_BYTES_PER_TOKEN else "nf4"
    wanted = min(max_slots, BF16_MIN_SLOTS)
    slots, _ = fit_to_memory(left, per_slot_bf16, wanted, prefill_tokens)
    return "bf16" if slots >= wanted else "nf4"


def usable_memory(total: float, free: float, cap_gib: float | None) -> float:
    """Bytes this worker may still take: free memory, under its cap (`VLMQ_GPU_MEMORY_GIB`, else 90% of the card)."""
    limit = cap_gib * 2**30 if cap_gib else total * DEFAULT_MEMORY_SHARE
    return min(free, limit - (total - free))
