"""The offline checkpoint builder: real classes, reloadable, idempotent, race-safe."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from transformers import AutoProcessor, Glm4vForConditionalGeneration, Qwen2VLForConditionalGeneration

from worker.inference.placeholder.checkpoint import MARKER, build_tiny_checkpoint

GLM_SPECIALS = (
    "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<|endoftext|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<|image|>", "<think>", "</think>",
)  # fmt: skip


def test_glm4v_checkpoint_reloads_with_real_classes(glm_dir: Path) -> None:
    model = Glm4vForConditionalGeneration.from_pretrained(glm_dir)
    processor = AutoProcessor.from_pretrained(glm_dir)
    assert type(processor).__name__ == "Glm46VProcessor"
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in GLM_SPECIALS}
    assert tokenizer.unk_token_id not in ids.values() and len(set(ids.values())) == len(ids)
    assert model.config.image_token_id == ids["<|image|>"]
    assert model.config.image_start_token_id == ids["<|begin_of_image|>"]
    assert set(model.generation_config.eos_token_id) == {ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]}
    assert model.get_output_embeddings().weight.shape[0] == len(tokenizer)
    size = sum(f.stat().st_size for f in glm_dir.iterdir())
    assert size < 5 * 2**20


def test_glm4v_chat_template_matches_glm46v_layout(glm_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(glm_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "text"}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>text<|assistant|>\n"
    off = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert off.endswith("text/nothink<|assistant|>\n<think></think>\n")


def test_qwen2_vl_checkpoint_reloads(qwen_dir: Path) -> None:
    model = Qwen2VLForConditionalGeneration.from_pretrained(qwen_dir)
    processor = AutoProcessor.from_pretrained(qwen_dir)
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")


def test_build_is_idempotent(glm_dir: Path) -> None:
    before = (glm_dir / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_checkpoint(glm_dir) == glm_dir
    assert (glm_dir / "model.safetensors").stat().st_mtime_ns == before


def test_concurrent_builders_leave_one_complete_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "racy"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            build_tiny_checkpoint(target, "qwen2_vl")
        except BaseException as exc:  # noqa: BLE001 - reported through the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert json.loads((target / MARKER).read_text())["family"] == "qwen2_vl"
    assert [p.name for p in tmp_path.iterdir()] == ["racy"]  # no staging leftovers
    Qwen2VLForConditionalGeneration.from_pretrained(target)
