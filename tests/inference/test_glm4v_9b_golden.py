"""The native GLM-4V-9B against what the original remote code computed (fp32, CPU, tiny checkpoint).

Prompt ids from our template and tokenizer, pixels from our preprocessing, the vision
features and spliced embeddings, logits at every position and a 24-token greedy
continuation: all must equal the reference's within the tolerances its README gives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.glm4v_9b_reference import (
    CASES,
    IMAGES,
    case,
    case_image,
    case_inputs,
    case_messages,
    reference_dir,
)
from worker.inference.families.glm4v_9b.config import Glm4v9bConfig
from worker.inference.families.glm4v_9b.inputs import image_pixels, prompt_ids
from worker.inference.families.glm4v_9b.model import Glm4v9bForConditionalGeneration
from worker.inference.families.glm4v_9b.tokenizer import load_tokenizer

LAST_LOGITS_TOLERANCE = 1e-4
TOP5_TOLERANCE = 2e-4
INTERMEDIATE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def reference() -> Path:
    return reference_dir()


@pytest.fixture(scope="module")
def model(reference: Path) -> Glm4v9bForConditionalGeneration:
    loaded, info = Glm4v9bForConditionalGeneration.from_pretrained(
        reference, dtype=torch.float32, output_loading_info=True
    )
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    return loaded.eval()


@pytest.fixture(scope="module")
def tensors(reference: Path) -> dict[str, torch.Tensor]:
    names = ("pixels", "last_logits", "intermediates")
    return {key: value for name in names for key, value in load_file(reference / f"{name}.safetensors").items()}


@pytest.mark.parametrize("name", CASES)
def test_prompt_ids_equal_the_original_template(reference: Path, name: str) -> None:
    golden_case = case(name)
    assert prompt_ids(load_tokenizer(str(reference)), case_messages(golden_case)) == golden_case["input_ids"]


@pytest.mark.parametrize("name", CASES)
def test_decoding_matches_the_original_tokenizer(reference: Path, name: str) -> None:
    tokenizer = load_tokenizer(str(reference))
    golden_case = case(name)
    assert [tokenizer.decode([i]) for i in golden_case["input_ids"]] == golden_case["input_tokens"]
    greedy = golden_case["greedy"]
    assert tokenizer.decode(greedy["new_token_ids"]) == greedy["text"]
    assert tokenizer.decode(greedy["new_token_ids"], skip_special_tokens=True) == greedy["text_skip_special"]


def test_special_token_strings_in_text_stay_text(reference: Path) -> None:
    tokenizer = load_tokenizer(str(reference))
    specials = set(tokenizer.convert_tokens_to_ids(list(tokenizer.added_tokens_encoder)))
    text = "<|user|> [gMASK]<sop><|begin_of_image|><|endoftext|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert not specials & set(ids) and tokenizer.decode(ids) == text


@pytest.mark.parametrize("image", IMAGES)
def test_pixels_equal_the_original_preprocessing(tensors: dict[str, torch.Tensor], image: str) -> None:
    golden_case = next(case(name) for name in CASES if (case(name).get("pixels") or {}).get("key") == f"pixels.{image}")
    pixels = image_pixels(case_image(golden_case), 112)
    expected = golden_case["pixels"]
    assert list(pixels.shape) == expected["shape"] and pixels.dtype == torch.float32
    assert hashlib.sha256(pixels.numpy().astype("<f4").tobytes()).hexdigest() == expected["sha256_f32_le"]
    assert torch.equal(pixels[0], tensors[expected["key"]])


@pytest.mark.parametrize("name", CASES)
def test_forward_equals_the_original(
    model: Glm4v9bForConditionalGeneration, tensors: dict[str, torch.Tensor], name: str
) -> None:
    golden_case = case(name)
    inputs = case_inputs(golden_case)
    with torch.inference_mode():
        embeds, positions = model.embed(
            inputs["input_ids"], torch.arange(inputs["input_ids"].shape[1]).unsqueeze(0), inputs.get("pixel_values")
        )
        logits = model(**inputs, use_cache=False).logits[0]
    assert positions[0].tolist() == golden_case["sequence_position_ids"]
    assert (embeds[0] - tensors[f"inputs_embeds.{name}"]).abs().max() < INTERMEDIATE_TOLERANCE
    if "pixel_values" in inputs:
        with torch.inference_mode():
            features = model.transformer.vision(inputs["pixel_values"])[0]
        image = golden_case["pixels"]["key"].removeprefix("pixels.")
        assert (features - tensors[f"vision_features.{image}"]).abs().max() < INTERMEDIATE_TOLERANCE
    assert logits.shape[0] == golden_case["sequence_length"]
    assert (logits[-1] - tensors[golden_case["last_logits"]["key"]]).abs().max() < LAST_LOGITS_TOLERANCE
    top5 = golden_case["top5_per_position"]
    for position, (ids, values) in enumerate(zip(top5["ids"], top5["values"], strict=True)):
        assert_same_top5(logits[position], ids, values, position)


def assert_same_top5(logits: torch.Tensor, ids: list[int], values: list[float], position: int) -> None:
    """Same ids in the same order, except that ids whose golden values lie within the tolerance may swap."""
    ours = logits.topk(5)
    assert torch.allclose(ours.values, torch.tensor(values), atol=TOP5_TOLERANCE), position
    for rank, (ours_id, golden_id) in enumerate(zip(ours.indices.tolist(), ids, strict=True)):
        if ours_id != golden_id:
            near = [i for i, v in zip(ids, values, strict=True) if abs(v - values[rank]) <= TOP5_TOLERANCE]
            assert ours_id in near, f"position {position}, rank {rank}: {ours_id} instead of {golden_id}"


@pytest.mark.parametrize("name", CASES)
def test_greedy_continuation_equals_the_original(model: Glm4v9bForConditionalGeneration, name: str) -> None:
    """Through `generate()` and transformers' DynamicCache: positions after the image count it as three."""
    golden_case = case(name)
    inputs = case_inputs(golden_case)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    assert output[0, len(golden_case["input_ids"]) :].tolist() == golden_case["greedy"]["new_token_ids"]


@pytest.mark.parametrize(
    ("key", "value"), [("rmsnorm", False), ("original_rope", False), ("apply_residual_connection_post_layernorm", True)]
)
def test_a_layout_this_code_does_not_compute_is_refused(reference: Path, key: str, value: bool) -> None:
    config = Glm4v9bConfig.from_pretrained(reference)
    setattr(config, key, value)
    with pytest.raises(ValueError, match=key):
        Glm4v9bForConditionalGeneration(config)


def test_a_prompt_without_its_image_mark_is_refused(model: Glm4v9bForConditionalGeneration) -> None:
    golden_case = case("text_only")
    with pytest.raises(ValueError, match="boi"):
        model(torch.tensor([golden_case["input_ids"]]), pixel_values=torch.zeros(1, 3, 112, 112), use_cache=False)
