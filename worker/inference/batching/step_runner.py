"""Running the decode step: eagerly (CPU, tests) or as captured CUDA graphs.

A decode step launches a few thousand small kernels; replaying a captured graph
launches them all at once, which is what makes a step cost GPU time instead of
Python time. Shapes are fixed at capture, so graphs are captured for a ladder of
batch sizes and attention windows (the cache positions read), and each step runs the
smallest graph that covers the live rows. Both ladders are fine-grained where it pays:
attention reads every row's window, so a step over rows of ~1,200 tokens should not read
2,048 positions (windows step by `WINDOW_STEP`), and past 16 rows batch sizes step by 16.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from worker.inference.batching.kv_slots import KVSlots

log = logging.getLogger(__name__)

DecodeStep = Callable[[Any, Any, Any, int, int], Any]
WINDOW_STEP = 256
BATCH_STEP = 16
MIN_WINDOW = 512


def ladder(top: int, start: int, step: int) -> list[int]:
    """`start, 2*start, ...` up to `step`, then every `step` below `top`, then `top` itself."""
    sizes = []
    size = start
    while size < top:
        sizes.append(size)
        size = size * 2 if size < step else size + step
    return [*sizes, top]


def covering(sizes: list[int], needed: int) -> int:
    """The smallest size in the ascending `sizes` that is at least `needed`."""
    return next(size for size in sizes if size >= needed)


class EagerSteps:
    """Runs the step on exactly the live batch and window; static input buffers all the same."""

    def __init__(self, step: DecodeStep, slots: KVSlots) -> None:
        import torch

        self.step = step
        self.slots = slots
        device = slots.keys[0].device
        self.row_index = torch.arange(slots.slots, device=device)
        self.tokens = torch.zeros(slots.slots, dtype=torch.long, device=device)
        self.positions = torch.zeros(slots.slots, dtype=torch.long, device=device)
        self.lengths = torch.zeros(slots.slots, dtype=torch.long, device=device)

    def _load(self, tokens: list[int], positions: list[int], lengths: list[int]) -> None:
        import torch

        batch = len(tokens)
        staged = torch.tensor([tokens, positions, lengths], dtype=torch.long)
        self.tokens[:batch].copy_(staged[0], non_blocking=True)
        self.positions[:batch].copy_(staged[1], non_blocking=True)
        self.lengths[:batch].copy_(staged[2], non_blocking=True)

    def __call__(self, tokens: list[int], positions: list[int], lengths: list[int], window: int) -> Any:
        """Logits `(len(tokens), vocab)` for one step; rows past the live ones are free slots."""
        self._load(tokens, positions, lengths)
        return self.step(self.tokens, self.positions, self.lengths, len(tokens), window)


class CapturedSteps(EagerSteps):
    """One CUDA graph per (batch size, window) on the ladder, sharing one memory pool."""

    def __init__(self, step: DecodeStep, slots: KVSlots) -> None:
        super().__init__(step, slots)
        self.batches = ladder(slots.slots, 1, BATCH_STEP)
        self.windows = ladder(slots.capacity, min(MIN_WINDOW, slots.capacity), WINDOW_STEP)
        self.graphs: dict[tuple[int, int], tuple[Any, Any]] = {}

    def capture(self) -> float:
        """Capture every graph (largest first, so smaller ones reuse its pool); returns seconds taken."""
        import torch

        started = time.perf_counter()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            # Lazy kernel set-up and compilation (the fused ops: one for one row, one for any
            # other count) must not happen inside a capture.
            for batch in sorted({1, min(2, self.batches[-1]), self.batches[-1]}):
                self.step(self.tokens, self.positions, self.lengths, batch, self.windows[-1])
        torch.cuda.current_stream().wait_stream(stream)
        pool = None
        with torch.inference_mode():
            for batch in reversed(self.batches):
                for window in reversed(self.windows):
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, pool=pool):
                        logits = self.step(self.tokens, self.positions, self.lengths, batch, window)
                    pool = graph.pool()
                    self.graphs[batch, window] = (graph, logits)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        log.info("captured %d decode graphs in %.1f s", len(self.graphs), seconds)
        return seconds

    def shape_for(self, batch: int, window: int) -> tuple[int, int]:
        """The captured (batch, window) that covers this many rows and cache positions."""
        return covering(self.batches, batch), covering(self.windows, window)

    def __call__(self, tokens: list[int], positions: list[int], lengths: list[int], window: int) -> Any:
        batch, window = self.shape_for(len(tokens), window)
        padding = batch - len(tokens)
        self._load(tokens + [0] * padding, positions + [0] * padding, lengths + [0] * padding)
        graph, logits = self.graphs[batch, window]
        graph.replay()
        return logits
