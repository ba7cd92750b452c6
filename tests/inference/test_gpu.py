"""The engine on a CUDA device (nf4 and int8 only work there); skipped without one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import torch
from PIL import Image

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.settings import Settings
from tests.support.glm4v_9b_reference import reference_dir
from worker.inference import load_engine
from worker.inference.batching.step_runner import CapturedSteps
from worker.inference.engine_contract import GenerationParams, InferenceRequest

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("quantization", ["nf4", "int8", "bf16"])
def test_tiny_model_on_cuda(glm_dir: Path, data_dir: Path, make_request, quantization: str) -> None:
    engine = load_engine(Settings(model=str(glm_dir), data_dir=data_dir, quantization=quantization, device="auto"))
    assert engine.base.model.device.type == "cuda"
    assert engine.base.pixel_dtype == torch.bfloat16
    assert engine.run(make_request("describe")).usage["completion_tokens"] > 0
    jsonschema.validate(engine.run(make_request("attributes", "json")).data, DEFAULT_PRODUCT_SCHEMA)


def test_captured_decode_graphs_answer_like_generate(glm_dir: Path, data_dir: Path, make_request) -> None:
    """The batching loop's CUDA graphs against transformers' own `generate()`, greedy, fp32."""
    settings = Settings(model=str(glm_dir), data_dir=data_dir, quantization="fp32", device="cuda", gpu_max_batch=4)
    batched = load_engine(settings)
    sequential = load_engine(settings.model_copy(update={"gpu_engine": "sequential"}))
    requests = [make_request("describe"), make_request("ocr"), make_request("ask", prompt="What is it?")]
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(batched.run, requests))
    assert [r.text for r in together] == [sequential.run(r).text for r in requests]


def test_glm4v_9b_captured_decode_graphs_answer_like_generate(tmp_path: Path) -> None:
    """GLM-4V-9B's step (its compiled norms and rotary) captured as CUDA graphs, against its `generate()`."""
    settings = Settings(
        model=str(reference_dir()), data_dir=tmp_path, quantization="fp32", device="cuda", gpu_max_batch=4
    )
    batched = load_engine(settings)
    assert isinstance(batched.scheduler.runner.steps, CapturedSteps)  # not the eager fallback
    sequential = load_engine(settings.model_copy(update={"gpu_engine": "sequential"}))
    greedy = GenerationParams(max_new_tokens=24, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
    requests = [
        InferenceRequest(task, Image.open(reference_dir() / f"images/{name}.png"), greedy)
        for task, name in (("describe", "shapes"), ("ocr", "text"), ("describe", "gradient"))
    ]
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(batched.run, requests))
    assert [r.text for r in together] == [sequential.run(r).text for r in requests]
