"""The native GLM-4V-9B behind `load_engine` and `HFEngine`: every task, streaming, constrained JSON, nf4.

fp32 runs on the reference checkpoint itself; nf4 (bitsandbytes' CPU kernels need
input widths that are multiples of 64, which the reference's toy sizes are not) runs
on a random checkpoint of the same layout built from its config with such widths,
saved in shards with an index as the real checkpoint is.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bitsandbytes as bnb
import jsonschema
import pytest
import torch
from PIL import Image

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.settings import Settings
from tests.support.glm4v_9b_reference import case, case_image, reference_dir
from worker.inference import load_engine
from worker.inference.batched import BatchedEngine
from worker.inference.engine import HFEngine, clean_output
from worker.inference.engine_contract import GenerationParams, InferenceRequest, Turn
from worker.inference.families.glm4v_9b.config import Glm4v9bConfig
from worker.inference.families.glm4v_9b.model import Glm4v9bForConditionalGeneration
from worker.inference.redaction import redact_text

GOLDEN_GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
JSON_GREEDY = GenerationParams(max_new_tokens=512, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
BNB_WIDTHS = {"hidden_size": 64, "ffn_hidden_size": 128, "kv_channels": 16}
BNB_VISION_WIDTHS = {"hidden_size": 64, "intermediate_size": 128}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> HFEngine:
    settings = Settings(
        model=str(reference_dir()),
        data_dir=tmp_path_factory.mktemp("data"),
        quantization="fp32",
        device="cpu",
        gpu_engine="sequential",
    )
    loaded = load_engine(settings)
    assert isinstance(loaded, HFEngine)  # one generate() per job (the batching loop: test_glm4v_9b_batching.py)
    return loaded


@pytest.fixture(scope="module")
def nf4_engine(tmp_path_factory: pytest.TempPathFactory) -> HFEngine:
    folder = tmp_path_factory.mktemp("glm4v-9b-bnb")
    config = Glm4v9bConfig.from_pretrained(reference_dir())
    for key, value in BNB_WIDTHS.items():
        setattr(config, key, value)
    config.vision_config = {**config.vision_config, **BNB_VISION_WIDTHS}
    torch.manual_seed(0)
    # Sharded with an index, as the real checkpoint is.
    Glm4v9bForConditionalGeneration(config).to(torch.bfloat16).save_pretrained(folder, max_shard_size="20MB")
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(reference_dir() / name, folder / name)
    settings = Settings(
        model=str(folder), data_dir=folder / "data", quantization="nf4", device="cpu", gpu_engine="sequential"
    )
    loaded = load_engine(settings)
    assert isinstance(loaded, HFEngine)
    return loaded


def golden_answer(engine: HFEngine, name: str) -> str:
    """What a user sees of the original model's greedy continuation."""
    return redact_text(clean_output(case(name)["greedy"]["text"], engine.hidden_tokens))[0]


def test_loads_the_original_layout_without_remote_code(engine: HFEngine) -> None:
    assert type(engine.model).__name__ == "Glm4v9bForConditionalGeneration"
    assert engine.model.config.auto_map  # the original config's remote-code mapping is there, and unused
    assert engine.inputs.tokenizer.is_fast and engine.pixel_dtype == torch.float32
    assert engine.end_ids == [151329, 151336, 151338]


def test_ask_with_history_answers_what_the_original_answers(engine: HFEngine) -> None:
    """The golden `history` case as a job: the image on the first turn, an earlier answer, a follow-up."""
    history = (
        Turn("user", "What colours do you see?"),
        Turn("assistant", "Red, green and blue gradients with a checkerboard."),
    )
    request = InferenceRequest(
        task="ask",
        image=case_image(case("history")),
        generation=GOLDEN_GREEDY,
        prompt="Which corner is the brightest?",
        history=history,
    )
    result = engine.run(request)
    assert result.text == golden_answer(engine, "history")
    assert result.usage["completion_tokens"] == 24 and result.finish_reason == "length"


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        ("describe", {}),
        ("ocr", {}),
        ("copy", {"options": {"channel": "title"}}),
        ("ask", {"prompt": "Is it <|user|> waterproof?"}),
    ],
)
def test_free_text_tasks(engine: HFEngine, task: str, kwargs: dict) -> None:
    image = Image.open(reference_dir() / "images/shapes.png")
    progress: list[tuple[int, int]] = []
    result = engine.run(
        InferenceRequest(task=task, image=image, generation=GOLDEN_GREEDY, **kwargs),
        lambda n, total: progress.append((n, total)),
    )
    assert result.text and "<|" not in result.text and result.usage["completion_tokens"] == 24
    assert progress[-1] == (24, 24)


def test_streaming_sends_the_answer_as_it_grows(engine: HFEngine) -> None:
    pieces: list[str] = []
    image = Image.open(reference_dir() / "images/text.png")
    params = GenerationParams(max_new_tokens=64, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
    result = engine.run(InferenceRequest(task="describe", image=image, generation=params), on_text=pieces.append)
    assert len(pieces) > 1
    assert result.text.startswith("".join(pieces))


def test_attributes_are_schema_valid_json(engine: HFEngine) -> None:
    """The constraint needs the output head (`get_output_embeddings`) and a fast tokenizer for llguidance."""
    image = Image.open(reference_dir() / "images/shapes.png")
    result = engine.run(InferenceRequest(task="attributes", image=image, generation=JSON_GREEDY))
    jsonschema.validate(result.data, DEFAULT_PRODUCT_SCHEMA)
    assert json.loads(result.text) == result.data


def test_nf4_quantizes_text_and_vision_linears_but_not_head_convs_or_norms(nf4_engine: HFEngine) -> None:
    assert len(list(Path(nf4_engine.model_name).glob("model-*-of-*.safetensors"))) > 1
    model = nf4_engine.model
    four_bit = {name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)}
    assert "transformer.encoder.layers.0.self_attention.query_key_value" in four_bit
    assert "transformer.vision.transformer.layers.1.mlp.fc2" in four_bit
    assert "transformer.vision.linear_proj.gate_proj" in four_bit
    head = model.transformer.output_layer
    assert type(head) is torch.nn.Linear and head.weight.dtype == torch.bfloat16
    vision = model.transformer.vision
    assert vision.patch_embedding.proj.weight.dtype == vision.conv.weight.dtype == torch.bfloat16
    assert nf4_engine.pixel_dtype == torch.bfloat16


def test_nf4_answers_free_text_and_json(nf4_engine: HFEngine) -> None:
    image = Image.open(reference_dir() / "images/gradient.png")
    described = nf4_engine.run(InferenceRequest(task="describe", image=image, generation=GOLDEN_GREEDY))
    assert described.usage["completion_tokens"] > 0
    schema = {"type": "object", "properties": {"color": {"type": "string", "maxLength": 12}}, "required": ["color"]}
    params = GenerationParams(max_new_tokens=64, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
    answered = nf4_engine.run(
        InferenceRequest(task="attributes", image=image, generation=params, options={"schema": schema})
    )
    assert set(answered.data) == {"color"}


def test_bf16_runs_with_bf16_pixels(tmp_path: Path) -> None:
    """The load dtype of the real checkpoint: rotary table, norms and the image splice in bf16."""
    settings = Settings(
        model=str(reference_dir()), data_dir=tmp_path, quantization="bf16", device="cpu", gpu_engine="sequential"
    )
    engine = load_engine(settings)
    assert {p.dtype for p in engine.model.parameters()} == {torch.bfloat16} and engine.pixel_dtype == torch.bfloat16
    image = Image.open(reference_dir() / "images/text.png")
    result = engine.run(InferenceRequest(task="ocr", image=image, generation=GOLDEN_GREEDY))
    assert result.usage["completion_tokens"] == 24


def test_nf4_in_the_batching_loop_answers_what_generate_answers(nf4_engine: HFEngine, tmp_path: Path) -> None:
    """The batched prefill and step call the quantized linears (fused q/k/v included) as the model does."""
    engine = load_engine(Settings(model=nf4_engine.model_name, data_dir=tmp_path, quantization="nf4", device="cpu"))
    assert isinstance(engine, BatchedEngine)
    requests = [
        InferenceRequest(task=task, image=Image.open(reference_dir() / f"images/{name}.png"), generation=GOLDEN_GREEDY)
        for task, name in (("describe", "gradient"), ("ocr", "text"))
    ]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(engine.run, requests))
    assert [r.text for r in together] == [nf4_engine.run(r).text for r in requests]
    engine.scheduler.close()
