"""Precision settings → `from_pretrained` keyword arguments.

`auto` (the default) picks by the card (`batching.memory_plan.choose_precision`): bf16
where its weights leave room for a full batch (it is the faster format there), else
`nf4`: bitsandbytes 4-bit weights for the text stack (~6.8 GiB for GLM-4.6V-Flash) while
the vision tower and lm_head stay in bf16, the only parts where 4-bit noticeably hurts.
Without a GPU `auto` is `nf4`. Settings that cannot work on the resolved device fail at
load with a message saying why.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.settings import Quantization, Settings
from worker.inference.batching.kernels import BatchSupport

log = logging.getLogger(__name__)


def resolve_device(requested: str) -> str:
    """`auto` → cuda when available; `cuda` without a GPU is a configuration error."""
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise ValueError("settings.device is 'cuda' but torch sees no CUDA device")
    if requested == "auto":
        return "cuda" if available else "cpu"
    return requested


def load_kwargs(quantization: Quantization, device: str, skip_modules: list[str]) -> dict[str, Any]:
    """`dtype` and `quantization_config` for `from_pretrained`.

    `llm_int8_skip_modules` replaces bitsandbytes' default list rather than extending
    it, so it must name the vision tower and the head with their full paths.
    """
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "fp32":
        return {"dtype": torch.float32}
    if quantization == "bf16":
        return {"dtype": torch.bfloat16}
    if quantization == "int8":
        if device != "cuda":
            raise ValueError("quantization 'int8' needs a CUDA device (bitsandbytes int8 has no CPU kernels)")
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip_modules)
        return {"dtype": torch.bfloat16, "quantization_config": config}
    if quantization == "nf4":
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=skip_modules,
        )
        return {"dtype": torch.bfloat16, "quantization_config": config}
    raise ValueError(f"unknown quantization {quantization!r}")


def auto_quantization(settings: Settings, device: str, empty_model: Any, batching: BatchSupport | None) -> Quantization:
    """The format `auto` stands for on this device, from the memory the worker may use and the model's size.

    `empty_model` is the module tree on the meta device (sizes without weights).
    """
    if device != "cuda":
        return "nf4"
    import torch

    from worker.inference.batching.memory_plan import bytes_per_slot, choose_precision, usable_memory

    free, total = torch.cuda.mem_get_info()
    room = usable_memory(total, free, settings.gpu_memory_gib)
    parameters = sum(parameter.numel() for parameter in empty_model.parameters())
    per_slot, slots = 0, 1
    if batching is not None:
        vocab = empty_model.get_output_embeddings().weight.shape[0]
        per_slot = bytes_per_slot(batching.kv_layout(empty_model), settings.gpu_max_seq_tokens, 2, vocab)
        slots = settings.gpu_max_batch
    chosen = choose_precision(room, parameters, per_slot, slots, settings.gpu_prefill_tokens)
    log.info(
        "quantization auto: %s (%.1f GiB usable, %.2f B parameters, %.1f GiB in bf16)",
        chosen,
        room / 2**30,
        parameters / 1e9,
        parameters * 2 / 2**30,
    )
    return chosen
