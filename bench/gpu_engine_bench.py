"""GPU cost of the real engine on the full-size GLM-4.6V-Flash architecture (random weights).

Builds the 10.3 B-parameter `Glm4vForConditionalGeneration` (GLM-4.6V-Flash config
numbers, real 151,552-token vocabulary) with random weights, saves it with
`save_pretrained`, loads it through the service's own `load_engine` (nf4 by default)
and runs every task through `engine.run`, recording load time, weights and peak GPU
memory, and per-task latency and tokens. Outputs are noise; costs are real.

GPU:  OUT=/some/dir python3 bench/gpu_engine_bench.py      (writes $OUT/gpu_engine_bench.json)
CPU dry run of the same path on the tiny checkpoint: --tiny --quantization fp32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from constrained_overhead import mask_cost  # sibling script in bench/
from PIL import Image, ImageDraw

from shared.settings import Settings
from worker.inference import load_engine
from worker.inference.engine_contract import GenerationParams, InferenceError, InferenceRequest, Turn
from worker.inference.placeholder.checkpoint import build_checkpoint

TASKS: list[tuple[str, dict[str, Any]]] = [
    ("describe", {}),
    ("ocr", {}),
    ("ask", {"prompt": "What is the product made of?"}),
    ("ask_followup", {"prompt": "Is it waterproof?",
                      "history": (Turn("user", "What is it?"), Turn("assistant", "A leather bag."))}),
    ("copy", {"options": {"channel": "social_post", "campaign": "Spring sale, 20% off"}}),
    ("attributes", {}),
]  # fmt: skip


def product_photo(size: tuple[int, int]) -> Image.Image:
    """A synthetic 'photo' with shapes and text, so the vision tower sees a real-sized input."""
    image = Image.new("RGB", size, (235, 232, 225))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w // 5, h // 5, 4 * w // 5, 4 * h // 5), fill=(150, 90, 40))
    draw.ellipse((w // 3, h // 3, 2 * w // 3, 2 * h // 3), fill=(30, 30, 30))
    draw.text((w // 10, h // 10), "VLMQ LEATHER CO. - 100% genuine", fill=(0, 0, 0))
    return image


class Recorder:
    """Accumulates results and rewrites the JSON after every step, so a cut run keeps its data."""

    def __init__(self, out_dir: Path | None) -> None:
        self.path = out_dir / "gpu_engine_bench.json" if out_dir else None
        self.data: dict[str, Any] = {}

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        print(key, json.dumps(value), flush=True)
        self.save()

    def save(self) -> None:
        if self.path:
            self.path.write_text(json.dumps(self.data, indent=1))


def gib(n: int) -> float:
    return round(n / 2**30, 2)


def timed(engine: Any, request: InferenceRequest, cuda: bool, **kwargs: Any) -> tuple[float, Any]:
    """Wall seconds of one `engine.run` (GPU work included) and its result."""
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = engine.run(request, **kwargs)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def measure_task(engine: Any, request: InferenceRequest, repeats: int, cuda: bool) -> dict[str, Any]:
    """Median latency, time to first token and decode cost per token over `repeats` runs."""
    one_token = replace(request, generation=replace(request.generation, max_new_tokens=1))
    runs = []
    for _ in range(repeats):
        prefill_s = prefill_seconds(engine, one_token)
        calls: list[int] = []
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds, result = timed(engine, request, cuda, progress=lambda n, total, calls=calls: calls.append(n))
        new = result.usage["completion_tokens"]
        runs.append({
            "latency_s": seconds,
            "prefill_s": prefill_s,
            "decode_ms_per_token": 1000 * (seconds - prefill_s) / max(new - 1, 1),
            "completion_tokens": new,
            "progress_calls": len(calls),
            "valid_json": result.data is not None if request.task == "attributes" else None,
            "peak_gib": gib(torch.cuda.max_memory_allocated()) if cuda else None,
        })  # fmt: skip
    summary: dict[str, Any] = {"runs": repeats, "prompt_tokens": result.usage["prompt_tokens"]}
    for key in ("latency_s", "prefill_s", "decode_ms_per_token", "completion_tokens"):
        summary[key] = round(statistics.median(r[key] for r in runs), 3)
    summary["progress_calls"] = runs[-1]["progress_calls"]
    if request.task == "attributes":
        summary["valid_json"] = f"{sum(bool(r['valid_json']) for r in runs)}/{repeats}"
    if cuda:
        summary["peak_gib"] = max(r["peak_gib"] for r in runs)
    return summary


def prefill_seconds(engine: Any, one_token: InferenceRequest) -> float:
    """Seconds to the first token (a one-token JSON answer is necessarily truncated)."""
    started = time.perf_counter()
    try:
        engine.run(one_token)
    except InferenceError as exc:
        if exc.code != "output_truncated":
            raise
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoint on CPU (dry run)")
    parser.add_argument("--quantization", default="nf4")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="runs per task; medians are reported")
    parser.add_argument("--json-budget", type=int, default=1024)
    parser.add_argument("--image", default="1024x768")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "glm46v-flash-random"))
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.tiny
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    rec = Recorder(out)
    import transformers

    rec.put("env", {
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "quantization": args.quantization, "full_size": not args.tiny, "image": args.image,
    })  # fmt: skip

    started = time.perf_counter()
    root = build_checkpoint(Path(args.root), "glm4v", full_size=not args.tiny, device="cuda" if cuda else "cpu")
    rec.put("build_save_s", round(time.perf_counter() - started, 1))
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    settings = Settings(
        model=str(root), quantization=args.quantization, device="cuda" if cuda else "cpu",
        data_dir=Path(tempfile.mkdtemp()), image_max_side=max(map(int, args.image.split("x"))),
    )  # fmt: skip
    started = time.perf_counter()
    engine = load_engine(settings)
    load: dict[str, Any] = {"load_s": round(time.perf_counter() - started, 1)}
    if cuda:
        load |= {
            "weights_gib": gib(torch.cuda.memory_allocated()),
            "load_peak_gib": gib(torch.cuda.max_memory_allocated()),
        }
    load["pixel_dtype"] = str(engine.pixel_dtype)
    rec.put("load", load)

    photo = product_photo(tuple(map(int, args.image.split("x"))))
    # The service's default sampling (settings: temperature 0.7, top_p 0.9, repetition 1.05).
    sampled = GenerationParams(args.new_tokens, 0.7, 0.9, 1.05)
    sampled_json = replace(sampled, max_new_tokens=args.json_budget)
    engine.run(InferenceRequest("describe", photo, GenerationParams(4, 0.0, 1.0, 1.0)))  # warm-up
    started = time.perf_counter()
    engine.constraints()  # llguidance's view of the 151k vocabulary: once per worker process
    rec.put("constraint_setup_s", round(time.perf_counter() - started, 2))
    end_id = engine.inputs.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    rec.put("mask_only", mask_cost(engine.constraints(), end_id, "cuda" if cuda else "cpu", objects=3))
    tasks: dict[str, Any] = {}
    for label, kwargs in TASKS:
        task = "ask" if label.startswith("ask") else label
        params = sampled_json if task == "attributes" else sampled
        try:
            tasks[label] = measure_task(engine, InferenceRequest(task, photo, params, **kwargs), args.repeats, cuda)
        except Exception as exc:  # noqa: BLE001 - a benchmark records failures and goes on
            tasks[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        rec.put(label, tasks[label])
    rec.data["tasks"] = tasks
    rec.save()
    free = [v["decode_ms_per_token"] for k, v in tasks.items() if k != "attributes" and "error" not in v]
    if free and "error" not in tasks.get("attributes", {"error": 1}):
        overhead = tasks["attributes"]["decode_ms_per_token"] - sum(free) / len(free)
        rec.put("constrained_overhead_ms_per_token", round(overhead, 1))
    if cuda:
        rec.put("max_peak_gib", max(v.get("peak_gib", 0) for v in tasks.values()))


if __name__ == "__main__":
    main()
