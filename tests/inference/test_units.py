"""Pure functions: output cleaning, redaction, images, prompts, progress."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from worker.inference.constrained import unpack_bitmask
from worker.inference.engine import clean_output, strip_think, strip_tokens
from worker.inference.engine_contract import GenerationParams, InferenceError, InferenceRequest, Turn
from worker.inference.families.processor_inputs import chat_messages
from worker.inference.generation import ProgressReporter
from worker.inference.image_normalise import pixel_budget, prepare_image
from worker.inference.prompts import PromptBook, conversation
from worker.inference.redaction import redact_data, redact_text, report


@pytest.mark.parametrize(
    ("raw", "visible"),
    [
        ("<think>hmm</think>A red cup.", "A red cup."),
        ("<think></think>\nA cup.<think>more</think> Blue.", "A cup. Blue."),
        ("reasoning that the prompt opened</think>Answer", "Answer"),
        ("Answer<think>cut off while thinking", "Answer"),
        ("plain", "plain"),
    ],
)
def test_strip_think(raw: str, visible: str) -> None:
    assert strip_think(raw).strip() == visible


def test_strip_special_tokens_and_control_chars() -> None:
    specials = ["<|endoftext|>", "<|user|>", "<|begin_of_box|>", "<|end_of_box|>", "<|image|>"]
    assert strip_tokens("<|begin_of_box|>Mug<|end_of_box|><|user|>", specials) == "Mug"
    assert (
        clean_output(strip_think("<think>x</think><|begin_of_box|>Mug\x02 cup\n<|endoftext|>"), specials) == "Mug cup"
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("call 13812345678 now", "phone"),
        ("call +86 138-1234-5678 now", "phone"),
        ("tel: (020) 1234 5678", "phone"),
        ("US +1 415-555-0100", "phone"),
        ("ID 11010519491231002X ok", "id_card"),
        ("ID 110105194912310021", "id_card"),
        ("mail shop.owner+tag@example.com.cn", "email"),
    ],
)
def test_redact_text_finds_pii(text: str, kind: str) -> None:
    redacted, counts = redact_text(text)
    assert counts == {kind: 1}
    assert f"[redacted:{kind}]" in redacted
    assert not any(ch.isdigit() for ch in redacted.split("[redacted")[1]) or kind == "email"


@pytest.mark.parametrize(
    "text",
    [
        "SKU 2024-05-12",
        "Size 38x25x12 cm",
        "Model A1234567",
        "10000mAh battery",
        "v1.2.3",
        "Model 2024-1080-2160",
        "SKU 12-3456-7890",
        "EAN 4006381333931",
        "UPC 036000291452",
        "4K: 3840 2160, 1920x1080",
        "Order 2023-0815-4471",
    ],
)
def test_redact_text_leaves_product_text_alone(text: str) -> None:
    """Digit groups that no numbering plan allows are product data (the old patterns redacted some)."""
    assert redact_text(text) == (text, {})


def test_redact_data_keeps_schema_valid_under_max_length() -> None:
    data = {
        "category": "phone case",
        "color": "call 13812345678",  # marker makes this longer than before
        "material": "silicone",
        "key_features": ["a@b.co", "slim"],
        "marketing_copy": "Buy now",
    }
    schema = json.loads(json.dumps(DEFAULT_PRODUCT_SCHEMA))
    schema["properties"]["color"]["maxLength"] = 16
    redacted, counts = redact_data(data, schema)
    jsonschema.validate(redacted, schema)
    assert "13812345678" not in json.dumps(redacted) and "a@b.co" not in json.dumps(redacted)
    assert report(counts) == [{"type": "email", "count": 1}, {"type": "phone", "count": 1}]
    assert data["color"] == "call 13812345678"  # the input is not mutated


def test_redacting_against_a_backtracking_pattern_is_linear() -> None:
    """The marker breaks the pattern; re-checking it with Python's `re` would take about 2^4000 steps."""
    schema = {"type": "object", "properties": {"note": {"type": "string", "pattern": "^(a+)+$", "maxLength": 5000}}}
    redacted, counts = redact_data({"note": "a" * 4000 + " 13812345678"}, schema)
    assert redacted["note"].endswith("[redacted:phone]") and counts == {"phone": 1}


def test_prepare_image_orients_converts_and_caps(tmp_path: Path) -> None:
    image = Image.new("RGBA", (400, 100), (255, 0, 0, 128))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.convert("RGB").save(tmp_path / "rotated.jpg", exif=exif)
    rotated = prepare_image(Image.open(tmp_path / "rotated.jpg"), 1024)
    assert rotated.size == (100, 400) and rotated.mode == "RGB"
    assert prepare_image(image, 200).size == (200, 50)
    assert pixel_budget(1024)["longest_edge"] == 2 * 1024 * 1024


def test_prepare_image_reports_broken_files(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InferenceError) as caught:
        prepare_image(Image.open(path), 1024)
    assert caught.value.code == "image_error"


def _request(task: str, **kwargs) -> InferenceRequest:
    return InferenceRequest(task=task, image=Image.new("RGB", (8, 8)),
                            generation=GenerationParams(8, 0.0, 1.0, 1.0), **kwargs)  # fmt: skip


def test_prompt_overrides_and_channels() -> None:
    book = PromptBook({"describe": "Say what it is.", "copy_title": "Title for {channel}"[:9]})
    assert book.instruction(_request("describe")) == "Say what it is."
    copy = book.instruction(_request("copy", options={"campaign": "Spring sale"}))
    assert copy == "Title for\nCampaign context: Spring sale"
    assert "selling points" in PromptBook().instruction(_request("copy", options={"channel": "selling_points"}))
    assert PromptBook().instruction(_request("ask", prompt="  Is it waterproof? ")) == "Is it waterproof?"


def test_conversation_shape() -> None:
    turns = conversation((Turn("user", "q1"), Turn("assistant", "a1")), "q2")
    messages = chat_messages(turns)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"][0] == {"type": "image"}
    assert all(part["type"] == "text" for m in messages[1:] for part in m["content"])
    with pytest.raises(InferenceError):
        conversation((Turn("user", "q1"),), "q2")


def test_progress_is_throttled() -> None:
    import torch

    now = [0.0]
    calls: list[tuple[int, int]] = []
    reporter = ProgressReporter(lambda n, total: calls.append((n, total)), 10, 100, clock=lambda: now[0])
    for step in range(1, 21):
        now[0] = step * 0.1
        assert not reporter(torch.zeros(1, 10 + step, dtype=torch.long), None).any()
    assert calls == [(5, 100), (10, 100), (15, 100), (20, 100)]


def test_bitmask_unpacking_matches_bit_order() -> None:
    import torch

    mask = torch.tensor([[0b101, -(2**31) | 1]], dtype=torch.int32)
    allowed = unpack_bitmask(mask, 40)[0].nonzero().flatten().tolist()
    assert allowed == [0, 2, 32]
