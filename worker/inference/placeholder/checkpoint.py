"""Random-weight checkpoints built offline with the real transformers classes.

Tests and the embedded default run the real model code without hub access: the
checkpoint is a genuine `Glm4vForConditionalGeneration` (or Qwen2-VL) with a local
tokenizer and processor, saved with `save_pretrained` exactly as a downloaded model
would be. Outputs are noise; shapes, prompts and costs are real. `full_size=True`
builds the GLM-4.6V-Flash architecture (10.3 B parameters) for GPU benchmarks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from worker.inference.placeholder.tokenizer import Family

MARKER = "vlmq-checkpoint.json"
RECIPE_VERSION = 1
TINY_VOCAB = 512
FULL_VOCAB = 151_552  # GLM-4.6V-Flash embedding rows
SEED = 0


def _glm4v_config(tokenizer: Any, full_size: bool) -> Any:
    from transformers import Glm4vConfig

    ids = tokenizer.convert_tokens_to_ids
    # GLM-4.1V/4.6V-Flash: rotary on half of each head, 3-D mrope over (t, h, w).
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    text: dict[str, Any] = {"vocab_size": len(tokenizer), "max_position_embeddings": 65536}
    vision: dict[str, Any] = {}
    if full_size:
        rope["mrope_section"] = [8, 12, 12]
    else:
        rope["mrope_section"] = [1, 1, 2]
        text |= {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        }
        vision = {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4, "out_hidden_size": 64}
    text["rope_parameters"] = rope
    return Glm4vConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"),
        image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"),
        video_end_token_id=ids("<|end_of_video|>"),
        architectures=["Glm4vForConditionalGeneration"],
    )


def _qwen2_vl_config(tokenizer: Any) -> Any:
    from transformers import Qwen2VLConfig

    ids = tokenizer.convert_tokens_to_ids
    return Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            "eos_token_id": ids("<|im_end|>"),
            "bos_token_id": ids("<|endoftext|>"),
        },
        vision_config={"depth": 2, "embed_dim": 64, "hidden_size": 64, "num_heads": 4, "mlp_ratio": 2},
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        architectures=["Qwen2VLForConditionalGeneration"],
    )


def _end_ids(family: Family, tokenizer: Any) -> list[int]:
    """Every id that ends an assistant turn (GLM has three)."""
    names = ["<|endoftext|>", "<|user|>", "<|observation|>"] if family == "glm4v" else ["<|im_end|>", "<|endoftext|>"]
    return [tokenizer.convert_tokens_to_ids(n) for n in names]


def _processor(family: Family, tokenizer: Any) -> Any:
    if family == "glm4v":
        from transformers import Glm4vVideoProcessor, Glm46VImageProcessor, Glm46VProcessor

        return Glm46VProcessor(
            image_processor=Glm46VImageProcessor(),
            tokenizer=tokenizer,
            video_processor=Glm4vVideoProcessor(),
            chat_template=tokenizer.chat_template,
        )
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=tokenizer.chat_template,
    )


def _model_class(family: Family) -> Any:
    from transformers import Glm4vForConditionalGeneration, Qwen2VLForConditionalGeneration

    return Glm4vForConditionalGeneration if family == "glm4v" else Qwen2VLForConditionalGeneration


def _write(path: Path, family: Family, full_size: bool, device: str) -> None:
    """Build, save and reload-check one checkpoint into an empty directory."""
    import torch
    from transformers import AutoProcessor, GenerationConfig

    from worker.inference.placeholder.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(family, FULL_VOCAB if full_size else TINY_VOCAB)
    config = _glm4v_config(tokenizer, full_size) if family == "glm4v" else _qwen2_vl_config(tokenizer)
    dtype = torch.bfloat16 if full_size else torch.float32
    end_ids = _end_ids(family, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = _model_class(family)(config)
        finally:
            torch.set_default_dtype(previous)
    model.generation_config = GenerationConfig(
        eos_token_id=end_ids, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(path)
    del model
    _processor(family, tokenizer).save_pretrained(path)
    # Prove the saved files load the way the engine will load them.
    AutoProcessor.from_pretrained(path)
    if not full_size:
        _model_class(family).from_pretrained(path)
    (path / MARKER).write_text(json.dumps(_marker(family, full_size)))


def _marker(family: Family, full_size: bool) -> dict[str, Any]:
    """What a finished build records; any difference (e.g. an older recipe) means rebuild."""
    return {"family": family, "full_size": full_size, "recipe": RECIPE_VERSION, "seed": SEED}


def _is_complete(path: Path, family: Family, full_size: bool) -> bool:
    try:
        return json.loads((path / MARKER).read_text()) == _marker(family, full_size)
    except (OSError, ValueError):
        return False


def build_checkpoint(path: Path, family: Family = "glm4v", *, full_size: bool = False, device: str = "cpu") -> Path:
    """Build a random-weight checkpoint at `path` unless a complete one is there.

    Built in a sibling temp directory and renamed into place, so concurrent builders
    never expose a half-written checkpoint; the loser of a race keeps the winner's.
    """
    path = Path(path)
    if _is_complete(path, family, full_size):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the checkpoint from other users
    try:
        _write(staging, family, full_size, device)
        if path.exists() and not _is_complete(path, family, full_size):
            shutil.rmtree(path, ignore_errors=True)  # stale recipe or an interrupted old layout
        try:
            os.rename(staging, path)
        except OSError:
            if not _is_complete(path, family, full_size):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def build_tiny_checkpoint(path: Path, family: Literal["glm4v", "qwen2_vl"] = "glm4v") -> Path:
    """A tiny (a few MB, seconds to build) random-weight checkpoint for tests and demos."""
    return build_checkpoint(path, family)
