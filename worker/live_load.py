"""What a GPU worker is doing right now, for its presence record and so for `/metrics`.

Read from the presence thread while the batching loop runs: `len()` of the loop's rows and
its plain-number stats are safe to read without its lock, and torch's memory counters are
read only where CUDA is already in use (a CPU worker never initialises it for this).
"""

from __future__ import annotations

from typing import Any


def live_load(engine: Any) -> dict[str, float]:
    """Rows running, batching-loop totals and GPU memory; keys a worker cannot know are left out."""
    load: dict[str, float] = {}
    scheduler = getattr(engine, "scheduler", None)  # the batching loop; one-at-a-time engines have none
    if scheduler is not None:
        stats = scheduler.stats
        load.update(
            rows_running=len(scheduler.rows),
            decode_steps=stats.steps,
            decode_seconds=stats.step_s,
            prefill_seconds=stats.prefill_s,
            prefill_tokens=stats.prefill_tokens,
        )
    return load | gpu_memory()


def gpu_memory() -> dict[str, float]:
    """Bytes torch holds on this process's GPU (allocated to tensors, reserved by its allocator) and the card's size."""
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return {}
    return {
        "gpu_memory_allocated_bytes": torch.cuda.memory_allocated(),
        "gpu_memory_reserved_bytes": torch.cuda.memory_reserved(),
        "gpu_memory_total_bytes": torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory,
    }
