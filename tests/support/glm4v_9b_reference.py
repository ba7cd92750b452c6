"""The GLM-4V-9B ground truth (`../shared/reference/glm4v-9b/`): a tiny checkpoint in the original layout
and what the original remote code computed on it. Missing, its tests skip locally and fail on CI."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file

from tests.support.services import missing
from worker.inference.families.glm4v_9b.inputs import Message

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = ("describe", "ocr", "history", "system", "chinese", "text_only", "text_only_history")
IMAGES = ("shapes", "text", "gradient")
REFERENCE_ENV = "VLMQ_GLM4V_9B_REFERENCE"
"""Overrides where the reference folder is (default: `shared/reference/glm4v-9b` beside the repository)."""


def reference_dir() -> Path:
    """The reference folder; skips (fails under `CI=true`) when it is not there."""
    folder = Path(os.environ.get(REFERENCE_ENV) or REPO_ROOT.parent / "shared/reference/glm4v-9b")
    if not (folder / "golden.json").is_file():
        missing(f"the GLM-4V-9B reference {folder}", f"is missing (set {REFERENCE_ENV} to its folder)")
    return folder


@cache
def golden() -> dict[str, Any]:
    return json.loads((reference_dir() / "golden.json").read_text())


def case(name: str) -> dict[str, Any]:
    return next(case for case in golden()["cases"] if case["name"] == name)


def case_messages(case: dict[str, Any]) -> list[Message]:
    return [Message(m["role"], m["content"], image="image" in m) for m in case["messages"]]


def case_image(case: dict[str, Any]) -> Image.Image | None:
    """The case's image, opened as the golden run opened it (`.convert("RGB")`)."""
    if case.get("image") is None:
        return None
    return Image.open(reference_dir() / case["image"]).convert("RGB")


@cache
def golden_pixels() -> dict[str, torch.Tensor]:
    """The pixels the original preprocessing made, by key (`pixels.<image>`)."""
    return load_file(reference_dir() / "pixels.safetensors")


def case_inputs(case: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The case's prompt ids `(1, L)` and, where it has an image, the original's pixels `(1, 3, S, S)`."""
    inputs = {"input_ids": torch.tensor([case["input_ids"]])}
    if case.get("pixels"):
        inputs["pixel_values"] = golden_pixels()[case["pixels"]["key"]].unsqueeze(0)
    return inputs
