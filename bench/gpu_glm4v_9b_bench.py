"""GPU cost of the native GLM-4V-9B on its full-size architecture (random weights), nf4 by default.

Builds `Glm4v9bForConditionalGeneration` from the real glm-4v-9b sizes (40 text
layers of 4096, the 63-layer EVA2-CLIP tower of 1792 at 1120x1120, the real
151,552-token vocabulary) with random weights, saves it in the original layout
(sharded safetensors + index, `config.json`, the tokenizer files of the reference
folder), loads it through the service's own `load_engine`, and times one request
with a 1120x1120 photo through `generate()`: time to the first token, the whole
answer, weights and peak GPU memory, and which modules bitsandbytes quantized.
Then the batching loop on the same weights: one slot (the same request's time and
peak memory), and `--slots` slots under a saturating burst of describe requests
(images/s, tokens/s, decode step time, peak memory), with a few greedy answers
batched against the same requests alone. Outputs are noise; costs are real.

GPU:  OUT=/some/dir python3 bench/gpu_glm4v_9b_bench.py --reference models/glm4v-9b-reference
      (the folder needs config.json, tokenizer.model and tokenizer_config.json of ../shared/reference/glm4v-9b)
CPU dry run of the same path at the reference's toy sizes: --tiny --quantization fp32 --slots 4
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from gpu_batch_bench import burst, common_prefix, loop_delta  # sibling script in bench/
from PIL import Image, ImageDraw

from shared.settings import Settings
from worker.inference import load_engine
from worker.inference.batched import build_batched_engine
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, InferenceRequest
from worker.inference.families.glm4v_9b.batch import BATCH_SUPPORT
from worker.inference.families.glm4v_9b.config import Glm4v9bConfig
from worker.inference.families.glm4v_9b.model import Glm4v9bForConditionalGeneration

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/glm4v-9b"
# The real glm-4v-9b sizes; every other config value is the reference's (it keeps the real ones).
TEXT_SIZES = {
    "num_layers": 40,
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "kv_channels": 128,
    "multi_query_group_num": 2,
    "ffn_hidden_size": 13696,
    "padded_vocab_size": 151552,
}
VISION_SIZES = {
    "num_hidden_layers": 63,
    "hidden_size": 1792,
    "num_heads": 16,
    "intermediate_size": 15360,
    "image_size": 1120,
    "patch_size": 14,
    "num_positions": 6401,
    "scaling_factor": 8,
}
TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json")


def full_size_config(reference: Path) -> Glm4v9bConfig:
    config = Glm4v9bConfig.from_pretrained(reference)
    for key, value in TEXT_SIZES.items():
        setattr(config, key, value)
    config.vision_config = {**config.vision_config, **VISION_SIZES}
    return config


def build(root: Path, reference: Path, tiny: bool, device: str) -> Path:
    """The random-weight checkpoint in bf16 (kept between runs: building and saving ~28 GB takes minutes)."""
    if (root / "model.safetensors.index.json").is_file() or (root / "model.safetensors").is_file():
        return root
    config = Glm4v9bConfig.from_pretrained(reference) if tiny else full_size_config(reference)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = Glm4v9bForConditionalGeneration(config)
        model.save_pretrained(staging, max_shard_size="5GB")
    finally:
        torch.set_default_dtype(default)
    del model
    for name in TOKENIZER_FILES:
        shutil.copy(reference / name, staging / name)
    staging.rename(root)
    return root


def photo(side: int) -> Image.Image:
    """A synthetic product photo at the tower's own input size."""
    image = Image.new("RGB", (side, side), (235, 232, 225))
    draw = ImageDraw.Draw(image)
    draw.rectangle((side // 5, side // 5, 4 * side // 5, 4 * side // 5), fill=(150, 90, 40))
    draw.text((side // 10, side // 10), "VLMQ LEATHER CO. - 100% genuine", fill=(0, 0, 0))
    return image


def gib(n: int) -> float:
    return round(n / 2**30, 2)


def timed_run(engine: Any, request: InferenceRequest, cuda: bool) -> tuple[float, Any]:
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = engine.run(request)
    if cuda:
        torch.cuda.synchronize()
    return round(time.perf_counter() - started, 3), result


def batched(base: HFEngine, settings: Settings, slots: int, image: Image.Image, args: Any, cuda: bool) -> dict:
    """The batching loop over `base`'s weights with `slots` slots: build, one request, then a saturating burst."""
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    engine = build_batched_engine(base, BATCH_SUPPORT, settings.model_copy(update={"gpu_max_batch": slots}))
    result: dict[str, Any] = {"slots": engine.plan.slots, "capacity": engine.plan.capacity,
                              "build_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    if cuda:
        result["after_build_gib"] = gib(torch.cuda.max_memory_allocated())
    engine.run(InferenceRequest("describe", image, GenerationParams(2, 0.0, 1.0, 1.0)))  # warm-up
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    greedy = GenerationParams(args.new_tokens, 0.0, 1.0, 1.0)
    result["single_request_s"], alone = timed_run(engine, InferenceRequest("describe", image, greedy), cuda)
    if cuda:
        result["single_request_peak_gib"] = gib(torch.cuda.max_memory_allocated())
    if slots > 1:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sampled = GenerationParams(args.new_tokens, settings.temperature, settings.top_p, settings.repetition_penalty)
        jobs = [InferenceRequest("describe", image, sampled) for _ in range(4 * engine.plan.slots)]
        before = engine.scheduler.stats.as_dict()
        saturated = burst(engine, jobs, engine.plan.slots)
        saturated.pop("outputs")
        saturated["loop"] = loop_delta(before, engine.scheduler.stats.as_dict())
        if cuda:
            saturated["peak_gib"] = gib(torch.cuda.max_memory_allocated())
        result["describe_burst"] = saturated
        together = burst(engine, [InferenceRequest("describe", image, greedy)] * 4, 4)["outputs"]
        result["greedy_common_prefix_chars"] = [common_prefix(alone.text, o.text) for o in together]
        result["greedy_alone_chars"] = len(alone.text)
    engine.scheduler.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", type=Path, default=Path(os.environ.get("VLMQ_GLM4V_9B_REFERENCE", REFERENCE)))
    parser.add_argument("--tiny", action="store_true", help="the reference's toy sizes on CPU (dry run)")
    parser.add_argument("--quantization", default="nf4")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "glm4v-9b-random")
    parser.add_argument("--slots", type=int, default=64, help="batching loop slots for the saturation burst")
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    record: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        record[key] = value
        print(key, json.dumps(value), flush=True)
        if out:
            (out / "gpu_glm4v_9b_bench.json").write_text(json.dumps(record, indent=1))

    import transformers

    put("env", {"device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
                "torch": torch.__version__, "transformers": transformers.__version__,
                "quantization": args.quantization, "full_size": not args.tiny})  # fmt: skip
    started = time.perf_counter()
    root = build(args.root, args.reference, args.tiny, device)
    put("build_save_s", round(time.perf_counter() - started, 1))
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    settings = Settings(model=str(root), quantization=args.quantization, device=device,
                        data_dir=Path(tempfile.mkdtemp()), image_max_side=1120, gpu_engine="sequential")  # fmt: skip
    started = time.perf_counter()
    engine = load_engine(settings)
    assert isinstance(engine, HFEngine)
    load: dict[str, Any] = {"load_s": round(time.perf_counter() - started, 1), "pixel_dtype": str(engine.pixel_dtype)}
    model = engine.model
    load["parameters"] = sum(p.numel() for p in model.parameters())
    load["linear_kinds"] = sorted({type(m).__name__ for m in model.modules() if "Linear" in type(m).__name__})
    load["head"] = f"{type(model.transformer.output_layer).__name__} {model.transformer.output_layer.weight.dtype}"
    if cuda:
        load |= {
            "weights_gib": gib(torch.cuda.memory_allocated()),
            "load_peak_gib": gib(torch.cuda.max_memory_allocated()),
        }
    put("load", load)

    side = 112 if args.tiny else 1120
    image = photo(side)
    greedy = GenerationParams(args.new_tokens, 0.0, 1.0, 1.0)
    engine.run(InferenceRequest("describe", image, GenerationParams(2, 0.0, 1.0, 1.0)))  # warm-up (kernels, allocator)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first_s, _ = timed_run(engine, InferenceRequest("describe", image, GenerationParams(1, 0.0, 1.0, 1.0)), cuda)
    total_s, result = timed_run(engine, InferenceRequest("describe", image, greedy), cuda)
    new = result.usage["completion_tokens"]
    request = {"image": f"{side}x{side}", "prompt_tokens": result.usage["prompt_tokens"], "completion_tokens": new,
               "first_token_s": first_s, "total_s": total_s,
               "decode_ms_per_token": round(1000 * (total_s - first_s) / max(new - 1, 1), 1)}  # fmt: skip
    if cuda:
        request["peak_gib"] = gib(torch.cuda.max_memory_allocated())
    put("request", request)
    schema = {"type": "object", "properties": {"color": {"type": "string", "maxLength": 24}}, "required": ["color"]}
    json_s, answered = timed_run(
        engine,
        InferenceRequest("attributes", image, GenerationParams(64, 0.0, 1.0, 1.0), options={"schema": schema}),
        cuda,
    )
    put("attributes", {"seconds": json_s, "data": answered.data})
    put("batched_1_slot", batched(engine, settings, 1, image, args, cuda))
    put(f"batched_{args.slots}_slots", batched(engine, settings, args.slots, image, args, cuda))


if __name__ == "__main__":
    main()
