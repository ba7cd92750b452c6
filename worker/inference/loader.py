"""Loading the configured model into an engine, once per worker process (after fork).

Nothing here touches torch or CUDA at import time; the Celery parent imports this
module and only the forked child calls `load_engine`. What differs between model
families is in their rows (`worker.inference.families.registry`), not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.placeholder_model import PLACEHOLDER_MODEL_NAME
from shared.settings import Settings
from worker.inference.engine_contract import Engine
from worker.inference.families.base import ModelFamily
from worker.inference.prompts import PromptBook


def _empty_model(model_cls: Any, config: Any, trust_remote_code: bool) -> Any:
    """The module tree without weights (meta device), to name modules before loading."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        if hasattr(model_cls, "from_config"):  # an auto class
            return model_cls.from_config(config, trust_remote_code=trust_remote_code)
        return model_cls(config)


def load_engine(settings: Settings, on_fatal: Callable[[BaseException], None] | None = None) -> Engine:
    """Load `settings.model` (or the offline placeholder checkpoint) with the configured precision.

    Families whose row says they batch come back wrapped in the batching loop (`on_fatal`
    is told if that loop dies); other families answer one request at a time.
    """
    import transformers
    from transformers import AutoConfig, PretrainedConfig

    from worker.inference.engine import HFEngine
    from worker.inference.families.registry import family_for
    from worker.inference.placeholder.checkpoint import build_tiny_checkpoint
    from worker.inference.quantization import auto_quantization, load_kwargs, resolve_device

    prompts = PromptBook(settings.prompts)  # fail on bad templates before the slow part
    placeholder = settings.model is None
    source = str(build_tiny_checkpoint(settings.tiny_model_dir)) if placeholder else str(settings.model)
    trust = settings.trust_remote_code
    family = family_for(PretrainedConfig.get_config_dict(source)[0], settings.model_family)
    device = resolve_device(settings.device)
    if family.model_class is not None:  # a native implementation: its own config class, no auto mapping
        model_cls = family.model_class()
        config = model_cls.config_class.from_pretrained(source)
    else:
        model_cls = getattr(transformers, family.auto_class)
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust)
    empty = _empty_model(model_cls, config, trust)
    skip = family.unquantized(empty)
    quantization = settings.quantization
    if quantization == "auto":
        quantization = auto_quantization(settings, device, empty, family.batching)
    model = model_cls.from_pretrained(
        source, device_map=device, trust_remote_code=trust, **load_kwargs(quantization, device, skip)
    ).eval()
    engine = HFEngine(
        model,
        family.inputs(source, config, settings),
        prompts,
        model_name=PLACEHOLDER_MODEL_NAME if placeholder else str(settings.model),
        is_placeholder=placeholder,
        image_max_side=settings.image_max_side,
        redact_pii=settings.redact_pii,
        strips_reasoning=family.strips_reasoning,
        quantization=quantization,
    )
    if not batches(family, settings):
        return engine
    from worker.inference.batched import build_batched_engine

    return build_batched_engine(engine, family.batching, settings, on_fatal)


def batches(family: ModelFamily, settings: Settings) -> bool:
    """Whether this family runs in the batching loop (only where its row says the decode step is written)."""
    if settings.gpu_engine == "batched" and family.batching is None:
        raise ValueError(f"gpu_engine 'batched' needs a family with a batching loop, not the {family.name!r} family")
    return family.batching is not None and settings.gpu_engine != "sequential"
