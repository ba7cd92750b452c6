"""Per-token cost of schema-constrained decoding (llguidance mask), printed, not asserted.

1. The mask alone (matcher advance + bitmask fill + unpack + masked_fill) on random
   logits, at the tiny test vocabulary and at GLM's real 151,552 ids.
2. End to end on the tiny GLM engine: seconds per generated token for free text
   against `attributes`.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python bench/constrained_overhead.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.settings import Settings
from worker.inference import load_engine
from worker.inference.constrained import ConstraintFactory, SchemaMask
from worker.inference.engine_contract import GenerationParams, InferenceRequest
from worker.inference.placeholder.tokenizer import build_tokenizer


def mask_cost(factory: ConstraintFactory, end_id: int, device: str = "cpu", objects: int = 5) -> dict[str, float]:
    """Mean milliseconds per token spent in the mask (GPU work included), sampling allowed tokens."""
    vocab_size = factory.vocab_size
    per_token, tokens_per_object = [], []
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(objects):
        mask = SchemaMask(factory.matcher(DEFAULT_PRODUCT_SCHEMA), vocab_size)
        ids = torch.tensor([[end_id]], device=device)
        while True:
            scores = torch.zeros(1, vocab_size, device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            scores = mask(ids, scores)
            if device == "cuda":
                torch.cuda.synchronize()
            per_token.append(time.perf_counter() - t0)
            token = torch.multinomial(torch.softmax(scores, -1), 1, generator=generator)
            ids = torch.cat([ids, token], dim=1)
            if int(token) == end_id:
                break
        tokens_per_object.append(ids.shape[1] - 1)
    return {
        "vocab": vocab_size,
        "device": device,
        "mask_ms_per_token": round(1000 * statistics.mean(per_token), 3),
        "tokens_per_object_mean": round(statistics.mean(tokens_per_object)),
    }


def synthetic_mask_cost(vocab_size: int, objects: int = 5) -> dict[str, float]:
    """`mask_cost` with a freshly built tokenizer of `vocab_size` ids, plus its setup time."""
    tokenizer = build_tokenizer("glm4v", vocab_size)
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    started = time.perf_counter()
    factory = ConstraintFactory(tokenizer, vocab_size, [end])
    setup_s = round(time.perf_counter() - started, 2)
    return {"tokenizer_setup_s": setup_s, **mask_cost(factory, end, objects=objects)}


def engine_cost(runs: int = 5) -> dict[str, float]:
    """Seconds per generated token on the tiny CPU engine, free text vs constrained JSON."""
    engine = load_engine(Settings(data_dir=Path(tempfile.mkdtemp()), quantization="fp32", device="cpu"))
    image = Image.new("RGB", (160, 120), (200, 60, 60))
    out = {}
    for task in ("describe", "attributes"):
        budget = 2000 if task == "attributes" else 400  # free text always runs to its budget
        params = GenerationParams(max_new_tokens=budget, temperature=1.0, top_p=1.0, repetition_penalty=1.0)
        engine.run(InferenceRequest(task=task, image=image, generation=params))  # warm-up
        seconds = tokens = 0.0
        for _ in range(runs):
            t0 = time.perf_counter()
            result = engine.run(InferenceRequest(task=task, image=image, generation=params))
            seconds += time.perf_counter() - t0
            tokens += result.usage["completion_tokens"]
        out[f"{task}_ms_per_token"] = round(1000 * seconds / tokens, 2)
    out["overhead_ms_per_token"] = round(out["attributes_ms_per_token"] - out["describe_ms_per_token"], 2)
    return out


if __name__ == "__main__":
    torch.set_num_threads(2)
    report = {
        "mask_only": [synthetic_mask_cost(512), synthetic_mask_cost(151_552, objects=2)],
        "tiny_engine_cpu": engine_cost(),
    }
    print(json.dumps(report, indent=1))
