"""Session-wide tiny checkpoints and engines: the real transformers code, built offline."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shared.settings import Settings
from worker.inference import load_engine
from worker.inference.batched import BatchedEngine
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, InferenceRequest
from worker.inference.placeholder.checkpoint import build_tiny_checkpoint

GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
SAMPLED = GenerationParams(max_new_tokens=24, temperature=1.0, top_p=0.9, repetition_penalty=1.05)
# The default attributes budget: the batching loop's budget guard closes the object inside it
# (random weights would otherwise fill every string to its maxLength and run out).
JSON_BUDGET = GenerationParams(max_new_tokens=512, temperature=1.0, top_p=1.0, repetition_penalty=1.0)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vlmq-data")


@pytest.fixture(scope="session")
def glm_dir(data_dir: Path) -> Path:
    """The placeholder checkpoint, where `load_engine` looks when no model is set."""
    return build_tiny_checkpoint(Settings(data_dir=data_dir).tiny_model_dir, "glm4v")


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny-qwen2-vl", "qwen2_vl")


@pytest.fixture(scope="session")
def glm_sequential(data_dir: Path, glm_dir: Path) -> HFEngine:
    """The same checkpoint answering one request at a time with `generate()`: the reference."""
    engine = load_engine(Settings(data_dir=data_dir, quantization="fp32", device="cpu", gpu_engine="sequential"))
    assert isinstance(engine, HFEngine)
    return engine


@pytest.fixture(scope="session")
def glm_fp32(data_dir: Path, glm_dir: Path) -> BatchedEngine:
    return load_engine(Settings(data_dir=data_dir, quantization="fp32", device="cpu"))


@pytest.fixture(scope="session")
def glm_nf4(data_dir: Path, glm_dir: Path) -> BatchedEngine:
    return load_engine(Settings(model=str(glm_dir), data_dir=data_dir, quantization="nf4", device="cpu"))


@pytest.fixture(scope="session")
def qwen_fp32(data_dir: Path, qwen_dir: Path) -> HFEngine:
    return load_engine(Settings(model=str(qwen_dir), data_dir=data_dir, quantization="fp32", device="cpu"))


@pytest.fixture(params=["fp32", "nf4"])
def glm_engine(request: pytest.FixtureRequest) -> BatchedEngine:
    """The GLM engine in both precisions the CPU can run."""
    return request.getfixturevalue(f"glm_{request.param}")


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A small product-like photo: keeps the prompt (and the tests) short."""
    image = Image.new("RGB", (160, 120), (230, 230, 230))
    image.paste((200, 40, 40), (40, 30, 120, 90))
    return image


PRESETS = {"greedy": GREEDY, "sampled": SAMPLED, "json": JSON_BUDGET}
MakeRequest = Callable[..., InferenceRequest]


@pytest.fixture(scope="session")
def make_request(photo: Image.Image) -> MakeRequest:
    """Build an `InferenceRequest`: `generation` is a preset name or `GenerationParams`."""

    def make(task: str, generation: str | GenerationParams = "greedy", image: Image.Image = photo, **kwargs):
        params = PRESETS[generation] if isinstance(generation, str) else generation
        return InferenceRequest(task=task, image=image, generation=params, **kwargs)

    return make
