"""Where a batched prefill's time goes on the full-size GLM-4.6V-Flash architecture (random weights).

The batching loop spends most of its time in prefills (the photo's ~1,095-token prompt), so
this times what a prefill of the standard request costs, each part alone with the GPU
synchronised: the processor and the staging (3-D rotary positions, casts, pinning) on the
caller's thread, the vision tower, and the packed prefill whole (into the engine's slots) at
several group sizes (tokens/s); then the kernels that take the GPU time of one group
(torch.profiler), next to how busy the GPU was over the prefill's wall time. bf16 by default
(`--quantization nf4` for the 4-bit format).

GPU:  OUT=/some/dir python3 bench/gpu_prefill_profile.py   (writes $OUT/gpu_prefill_profile.json)
CPU dry run on the tiny checkpoint:  PYTHONPATH=. .venv/bin/python bench/gpu_prefill_profile.py --tiny
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from gpu_batch_bench import request, sync  # sibling script in bench/
from gpu_engine_bench import Recorder

from shared.settings import Settings
from worker.inference.batched import build_batched_engine
from worker.inference.engine import HFEngine
from worker.inference.families.glm4v_batch import BATCH_SUPPORT
from worker.inference.loader import load_engine
from worker.inference.placeholder.checkpoint import build_checkpoint


def timed(fn: Callable[[], Any], runs: int = 3) -> float:
    """Median seconds of `fn` over `runs`, after one untimed run, the GPU synchronised around each."""
    fn()
    times = []
    for _ in range(runs):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def parts(base: HFEngine, kernels: Any, inputs: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds of each part of one packed prefill of `inputs` (staged), timed alone."""
    core = base.model.model
    device = base.model.device
    pixels = torch.cat([item["pixel_values"] for item in inputs]).to(device)
    grids = torch.cat([item["image_grid_thw"] for item in inputs]).to(device)
    slots = list(range(len(inputs)))
    with torch.inference_mode():
        return {
            "vision_s": timed(lambda: core.get_image_features(pixels, grids)),
            "whole_s": timed(lambda: kernels.prefill(inputs, slots)),
        }


def kernel_profile(kernels: Any, inputs: list[dict[str, Any]], top: int) -> dict[str, Any]:
    """The kernels with the most GPU time in one prefill, and GPU-busy time against wall time."""
    from torch.profiler import ProfilerActivity, profile

    slots = list(range(len(inputs)))
    with torch.inference_mode():
        kernels.prefill(inputs, slots)
        sync()
        started = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            kernels.prefill(inputs, slots)
            sync()
    wall = time.perf_counter() - started
    events = [e for e in prof.key_averages() if e.device_time_total > 0 and e.device_type.name == "CUDA"]
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    busy = sum(e.self_device_time_total for e in events) / 1e6
    return {
        "wall_s_profiled": round(wall, 3),
        "gpu_busy_s": round(busy, 3),
        "top": [
            {"kernel": e.key[:120], "calls": e.count, "ms": round(e.self_device_time_total / 1e3, 1)}
            for e in events[:top]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny checkpoint on CPU (a dry run)")
    parser.add_argument("--groups", default="1,2,4,7", help="images per prefill to time")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--quantization", default="bf16")
    args = parser.parse_args()
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    rec = Recorder(out)
    rec.path = out / "gpu_prefill_profile.json" if out else None
    root = Path(tempfile.gettempdir(), "glm46v-flash-random" if not args.tiny else "glm46v-tiny-bench")
    device = "cpu" if args.tiny else "cuda"
    build_checkpoint(root, "glm4v", full_size=not args.tiny, device=device)
    settings = Settings(
        model=str(root), quantization="fp32" if args.tiny else args.quantization, device=device,
        data_dir=Path(tempfile.mkdtemp()), gpu_engine="sequential", gpu_max_batch=8,
    )  # fmt: skip
    base = load_engine(settings)
    assert isinstance(base, HFEngine)
    rec.put("device", "cpu" if args.tiny else torch.cuda.get_device_name())
    rec.put("quantization", base.quantization)
    engine = build_batched_engine(base, BATCH_SUPPORT, settings)
    kernels = engine.scheduler.runner.kernels
    prepared = [base.prepare(request("describe", 128, settings)) for _ in range(max(map(int, args.groups.split(","))))]
    rec.put("processor_s", round(timed(lambda: base.prepare(request("describe", 128, settings))), 4))
    rec.put("stage_s", round(timed(lambda: kernels.stage(prepared[0].inputs)), 4))
    staged = [kernels.stage(p.inputs) for p in prepared]
    rec.put("prompt_tokens", int(staged[0]["input_ids"].shape[1]))
    groups = {}
    for size in map(int, args.groups.split(",")):
        inputs = staged[:size]
        split = {key: round(value, 4) for key, value in parts(base, kernels, inputs).items()}
        tokens = sum(int(i["input_ids"].shape[1]) for i in inputs)
        split["tokens_per_s"] = round(tokens / split["whole_s"])
        groups[size] = split
        rec.put("groups", groups)
    if not args.tiny:
        rec.put("kernels", kernel_profile(kernels, staged, args.top))
    engine.scheduler.close()


if __name__ == "__main__":
    main()
