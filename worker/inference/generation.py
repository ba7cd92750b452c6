"""One `generate()` call with the request's sampling settings, constraint, progress hook and stop signal.

Progress is reported by a stopping criterion: it sees every decode step, so it can count
tokens without a streamer thread; it never stops generation itself. Another criterion
checks the stop signal at every step, so a cancel or time limit pushed from outside ends
generation at the next token rather than at the next (throttled) progress report. New
text goes out through a streamer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import StoppingCriteria

from worker.inference.engine_contract import GenerationParams, ProgressCallback, StopSignal, TextCallback
from worker.inference.text_deltas import TextDeltas


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


class StopCheck(StoppingCriteria):
    """Raises the stop signal's reason at the first decode step after it is set."""

    def __init__(self, stop: StopSignal) -> None:
        self.stop = stop

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if (reason := self.stop.reason) is not None:
            raise reason
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class TextStreamer:
    """A `generate()` streamer: the first `put` is the prompt, each later one new token ids."""

    def __init__(self, deltas: TextDeltas, on_text: TextCallback) -> None:
        self.deltas = deltas
        self.on_text = on_text
        self.new_ids: list[int] | None = None

    def put(self, value: Any) -> None:
        if self.new_ids is None:
            self.new_ids = []
            return
        self.new_ids.extend(value.reshape(-1).tolist())
        if piece := self.deltas.update(self.new_ids):
            self.on_text(piece)

    def end(self) -> None:
        """Nothing to flush: the held-back tail arrives with the finished result."""


def sampling_kwargs(params: GenerationParams) -> dict[str, Any]:
    """Temperature 0 means greedy; otherwise nucleus sampling."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.temperature <= 0:
        return kwargs | {"do_sample": False}
    return kwargs | {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}


def generate(
    model: Any,
    inputs: dict[str, Any],
    params: GenerationParams,
    logits_processors: list[Any],
    progress: ProgressCallback | None,
    deltas: TextDeltas | None = None,
    on_text: TextCallback | None = None,
    stop: StopSignal | None = None,
) -> Any:
    """The full output sequence (prompt + new ids) of batch row 0; new text goes to `on_text`;
    raises the reason of `stop` once it is set."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    prompt_length = inputs["input_ids"].shape[1]
    criteria = StoppingCriteriaList()
    if progress is not None:
        criteria.append(ProgressReporter(progress, prompt_length, params.max_new_tokens))
    if stop is not None:
        criteria.append(StopCheck(stop))
    streamer = TextStreamer(deltas, on_text) if deltas is not None and on_text is not None else None
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            **sampling_kwargs(params),
            logits_processor=LogitsProcessorList(logits_processors),
            stopping_criteria=criteria,
            streamer=streamer,
        )
    if progress is not None:
        progress(output.shape[1] - prompt_length, params.max_new_tokens)
    return output[:1]
