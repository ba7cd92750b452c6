"""Throttled progress reports from inside `generate()`.

A stopping criterion sees every decode step, so it can count tokens without a
streamer thread; it never stops generation itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import StoppingCriteria

from worker.inference.engine_contract import ProgressCallback


class ProgressReporter(StoppingCriteria):
    """Calls `callback(tokens_so_far, budget)` at most once per `interval_s`."""

    def __init__(
        self,
        callback: ProgressCallback,
        prompt_length: int,
        budget: int,
        interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = callback
        self.prompt_length = prompt_length
        self.budget = budget
        self.interval_s = interval_s
        self.clock = clock
        self._last = clock()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        now = self.clock()
        if now - self._last >= self.interval_s:
            self._last = now
            self.callback(input_ids.shape[1] - self.prompt_length, self.budget)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
