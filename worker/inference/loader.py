"""Loading the configured model into an engine, once per worker process (after fork).

Nothing here touches torch or CUDA at import time; the Celery parent imports this
module and only the forked child calls `load_engine`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.settings import Settings
from worker.inference.engine_contract import Engine
from worker.inference.prompts import PromptBook

PLACEHOLDER_NAME = "tiny-glm4v-random"
GLM4V_TYPES = frozenset({"glm4v", "glm46v"})


def detect_family(config: dict[str, Any], requested: str = "auto") -> str:
    """`glm4v`, `glm4v_legacy` (GLM-4V-9B remote code) or `image_text`, from config.json."""
    if requested != "auto":
        return requested
    model_type = config.get("model_type", "")
    architectures = config.get("architectures") or []
    if model_type in GLM4V_TYPES or any(a.startswith(("Glm4v", "Glm46V")) for a in architectures):
        return "glm4v"
    if model_type == "chatglm" and "vision_config" in config:
        return "glm4v_legacy"
    return "image_text"


def _empty_model(model_cls: Any, config: Any, trust_remote_code: bool) -> Any:
    """The module tree without weights (meta device), to name modules before loading."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        return model_cls.from_config(config, trust_remote_code=trust_remote_code)


def load_engine(settings: Settings, on_fatal: Callable[[BaseException], None] | None = None) -> Engine:
    """Load `settings.model` (or the offline tiny checkpoint) with the configured precision.

    GLM-4.1V/4.6V come back wrapped in the batching loop (`on_fatal` is told if that
    loop dies); other families answer one request at a time.
    """
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
        PretrainedConfig,
    )

    from worker.inference.engine import HFEngine
    from worker.inference.legacy_glm4v import LegacyGlm4vInputs
    from worker.inference.model_inputs import ProcessorInputs
    from worker.inference.model_parts import keep_unquantized
    from worker.inference.placeholder.checkpoint import build_tiny_checkpoint
    from worker.inference.quantization import load_kwargs, resolve_device

    prompts = PromptBook(settings.prompts)  # fail on bad templates before the slow part
    placeholder = settings.model is None
    source = str(build_tiny_checkpoint(settings.tiny_model_dir)) if placeholder else str(settings.model)
    trust = settings.trust_remote_code
    family = detect_family(PretrainedConfig.get_config_dict(source)[0], settings.model_family)
    if family == "glm4v_legacy" and not trust:
        raise ValueError("GLM-4V-9B runs remote code: set trust_remote_code=true to load it")
    device = resolve_device(settings.device)
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust)
    model_cls = AutoModelForCausalLM if family == "glm4v_legacy" else AutoModelForImageTextToText
    skip = keep_unquantized(_empty_model(model_cls, config, trust))
    model = model_cls.from_pretrained(
        source, device_map=device, trust_remote_code=trust, **load_kwargs(settings.quantization, device, skip)
    ).eval()
    if family == "glm4v_legacy":
        vision = config.vision_config
        image_size = vision["image_size"] if isinstance(vision, dict) else vision.image_size
        inputs: Any = LegacyGlm4vInputs(AutoTokenizer.from_pretrained(source, trust_remote_code=True), image_size)
    else:
        inputs = ProcessorInputs(
            AutoProcessor.from_pretrained(source, trust_remote_code=trust), settings.image_max_side
        )
    engine = HFEngine(
        model,
        inputs,
        prompts,
        model_name=PLACEHOLDER_NAME if placeholder else str(settings.model),
        is_placeholder=placeholder,
        image_max_side=settings.image_max_side,
        redact_pii=settings.redact_pii,
    )
    if not batches(family, settings):
        return engine
    from worker.inference.batched import build_batched_engine

    return build_batched_engine(engine, settings, on_fatal)


def batches(family: str, settings: Settings) -> bool:
    """Whether this family runs in the batching loop (only GLM-4.1V/4.6V's decode step is written)."""
    if settings.gpu_engine == "batched" and family != "glm4v":
        raise ValueError(f"gpu_engine 'batched' needs a GLM-4.1V/4.6V model, not the {family!r} family")
    return family == "glm4v" and settings.gpu_engine != "sequential"
