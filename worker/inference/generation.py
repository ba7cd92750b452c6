"""One `generate()` call with the request's sampling settings, constraint and progress hook."""

from __future__ import annotations

from typing import Any

from worker.inference.progress import ProgressReporter
from worker.inference.types import GenerationParams, ProgressCallback


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
) -> Any:
    """The full output sequence (prompt + new ids) of batch row 0."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    prompt_length = inputs["input_ids"].shape[1]
    criteria = StoppingCriteriaList()
    if progress is not None:
        criteria.append(ProgressReporter(progress, prompt_length, params.max_new_tokens))
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            **sampling_kwargs(params),
            logits_processor=LogitsProcessorList(logits_processors),
            stopping_criteria=criteria,
        )
    if progress is not None:
        progress(output.shape[1] - prompt_length, params.max_new_tokens)
    return output[:1]
