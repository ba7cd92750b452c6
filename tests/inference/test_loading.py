"""`load_engine`: families, precisions, and refusing settings that cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import bitsandbytes as bnb
import pytest
import torch

from shared.placeholder_model import PLACEHOLDER_MODEL_NAME
from shared.settings import ModelFamily, Settings
from worker.inference import load_engine
from worker.inference.batched import BatchedEngine
from worker.inference.engine import HFEngine
from worker.inference.families.registry import FAMILIES, family_for
from worker.inference.quantization import load_kwargs


def test_placeholder_engine_builds_and_flags_tiny_model(glm_fp32: BatchedEngine) -> None:
    assert glm_fp32.is_placeholder
    assert glm_fp32.model_name == PLACEHOLDER_MODEL_NAME
    assert type(glm_fp32.base.model).__name__ == "Glm4vForConditionalGeneration"


def test_real_model_path_is_not_placeholder(glm_nf4: BatchedEngine, qwen_fp32: HFEngine) -> None:
    assert not glm_nf4.is_placeholder
    assert type(qwen_fp32.model).__name__ == "Qwen2VLForConditionalGeneration"


def test_nf4_quantizes_text_stack_but_not_vision_or_head(glm_nf4: BatchedEngine) -> None:
    model = glm_nf4.base.model
    four_bit = {name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)}
    assert four_bit, "no layer was quantized"
    assert all(name.startswith("model.language_model.") for name in four_bit)
    assert "model.language_model.layers.0.self_attn.q_proj" in four_bit
    assert "model.language_model.layers.1.mlp.down_proj" in four_bit
    assert type(model.lm_head) is torch.nn.Linear and model.lm_head.weight.dtype == torch.bfloat16
    visual_linears = [m for m in model.model.visual.modules() if isinstance(m, torch.nn.Linear)]
    assert visual_linears and not any(isinstance(m, bnb.nn.Linear4bit) for m in visual_linears)
    assert glm_nf4.base.pixel_dtype == torch.bfloat16


def test_fp32_keeps_everything_fp32(glm_fp32: BatchedEngine) -> None:
    assert {p.dtype for p in glm_fp32.base.model.parameters()} == {torch.float32}
    assert glm_fp32.base.pixel_dtype == torch.float32


def test_skip_list_names_full_module_paths() -> None:
    config = load_kwargs("nf4", "cpu", ["model.visual", "lm_head"])["quantization_config"]
    assert config.llm_int8_skip_modules == ["model.visual", "lm_head"]
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_int8_without_cuda_is_refused(glm_dir: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match="int8"):
        load_engine(Settings(model=str(glm_dir), data_dir=data_dir, quantization="int8"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA refusal")
def test_cuda_device_without_cuda_is_refused(glm_dir: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match="cuda"):
        load_engine(Settings(model=str(glm_dir), data_dir=data_dir, device="cuda"))


def test_bad_prompt_override_is_refused_at_load(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown prompt template"):
        load_engine(Settings(data_dir=data_dir, prompts={"describee": "x"}))
    with pytest.raises(ValueError, match="invalid"):
        load_engine(Settings(data_dir=data_dir, prompts={"ask": "{questoin}"}))


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"model_type": "glm4v", "architectures": ["Glm4vForConditionalGeneration"]}, "glm4v"),
        ({"model_type": "glm46v"}, "glm4v"),
        ({"model_type": "chatglm", "architectures": ["ChatGLMModel"], "vision_config": {}}, "glm4v_9b"),
        (
            {"model_type": "chatglm", "architectures": ["Glm4v9bForConditionalGeneration"], "vision_config": {}},
            "glm4v_9b",
        ),
        ({"model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"]}, "image_text"),
    ],
)
def test_family_detection(config: dict, family: str) -> None:
    assert family_for(config).name == family
    assert family_for(config, "image_text").name == "image_text"


def test_the_family_table_has_a_row_for_every_configurable_family() -> None:
    assert [family.name for family in FAMILIES] == [name for name in get_args(ModelFamily) if name != "auto"]
    assert FAMILIES[-1].matches({}), "the last row is the fallback"


def test_only_glm_rows_turn_thinking_off_and_strip_reasoning(glm_sequential: HFEngine, qwen_fp32: HFEngine) -> None:
    assert glm_sequential.inputs.template_switches == {"enable_thinking": False}
    assert qwen_fp32.inputs.template_switches == {}
    for engine, visible in ((glm_sequential, "b"), (qwen_fp32, "<think>a</think>b")):
        ids = engine.inputs.tokenizer.encode("<think>a</think>b", add_special_tokens=False)
        assert engine.visible_text(ids) == visible
