"""Every task through the real engine on the tiny checkpoints (fp32 and nf4)."""

from __future__ import annotations

import pytest
from PIL import Image

from worker.inference.batched import BatchedEngine
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, InferenceError, Turn


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        ("describe", {}),
        ("ocr", {}),
        ("ask", {"prompt": "What is the product made of?"}),
        ("copy", {}),
        ("copy", {"options": {"channel": "livestream_script", "campaign": "Double 11 sale"}}),
    ],
)
def test_free_text_tasks(glm_engine: BatchedEngine, make_request, task: str, kwargs: dict) -> None:
    calls: list[tuple[int, int]] = []
    result = glm_engine.run(make_request(task, **kwargs), progress=lambda n, total: calls.append((n, total)))
    assert isinstance(result.text, str) and result.data is None
    assert result.usage["prompt_tokens"] > 0 and 0 < result.usage["completion_tokens"] <= 24
    assert calls and calls[-1] == (result.usage["completion_tokens"], 24)
    assert "<|" not in result.text and "<think>" not in result.text


def test_attributes_task(glm_engine: BatchedEngine, make_request) -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string", "maxLength": 12}},
        "required": ["color"],
        "additionalProperties": False,
    }
    result = glm_engine.run(
        make_request("attributes", GenerationParams(200, 1.0, 1.0, 1.0), options={"schema": schema})
    )
    assert set(result.data) == {"color"}


def test_ask_continues_conversation(glm_engine: BatchedEngine, make_request) -> None:
    history = (Turn("user", "What is it?"), Turn("assistant", "A red box."))
    result = glm_engine.run(make_request("ask", "sampled", prompt="How big?", history=history))
    assert result.usage["completion_tokens"] > 0


def test_sampling_and_greedy_both_run(glm_fp32: BatchedEngine, make_request) -> None:
    first = glm_fp32.run(make_request("describe"))
    again = glm_fp32.run(make_request("describe"))
    assert first.text == again.text  # temperature 0 is greedy, hence repeatable
    assert glm_fp32.run(make_request("describe", "sampled")).usage["completion_tokens"] > 0


@pytest.mark.parametrize(("task", "kwargs"), [("describe", {}), ("ask", {"prompt": "Which color?"})])
def test_qwen2_vl_through_the_same_engine(qwen_fp32: HFEngine, make_request, task: str, kwargs: dict) -> None:
    result = qwen_fp32.run(make_request(task, **kwargs))
    assert result.usage["prompt_tokens"] > 0 and result.usage["completion_tokens"] > 0


def test_large_image_is_capped(glm_fp32: BatchedEngine, make_request) -> None:
    big = Image.new("RGB", (3000, 200), (10, 200, 10))
    result = glm_fp32.run(make_request("describe", image=big))
    # Capped to 1024x68: ~110 visual tokens; uncapped (3000x200) would be ~750.
    assert result.usage["prompt_tokens"] < 300


@pytest.mark.parametrize(
    ("task", "kwargs", "code"),
    [
        ("ask", {}, "invalid_request"),
        ("copy", {"options": {"channel": "billboard"}}, "invalid_options"),
        ("ask", {"prompt": "q", "history": (Turn("assistant", "hi"),)}, "invalid_history"),
        ("attributes", {"options": {"schema": {"type": 12}}}, "invalid_schema"),
        ("attributes", {"options": {"schema": {"not": {"type": "string"}}}}, "invalid_schema"),  # llguidance lacks it
    ],
)
def test_bad_requests_raise_inference_error(glm_fp32: BatchedEngine, make_request, task, kwargs, code) -> None:
    with pytest.raises(InferenceError) as caught:
        glm_fp32.run(make_request(task, **kwargs))
    assert caught.value.code == code
