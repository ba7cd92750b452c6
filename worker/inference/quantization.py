"""Precision settings → `from_pretrained` keyword arguments.

`nf4` is the production default: bitsandbytes 4-bit weights for the text stack
(~6.8 GiB for GLM-4.6V-Flash) while the vision tower and lm_head stay in bf16, the
only parts where 4-bit noticeably hurts. Settings that cannot work on the resolved
device fail at load with a message saying why.
"""

from __future__ import annotations

from typing import Any

from shared.settings import Quantization


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
