"""Where a decode step's GPU time goes on the full-size GLM-4.6V-Flash architecture (random weights).

Builds the batching loop at the catalogue setting (128 slots x 2,048 positions, nf4), times the
captured step at several batch sizes and windows (`--quantization bf16` for the other format),
and runs one step eagerly under torch.profiler
(the same kernels the graph replays) to sum its GPU time by kind: bitsandbytes' dequantization,
the dense products, attention, and the rest.

GPU:  OUT=/some/dir python3 bench/gpu_decode_profile.py   (writes $OUT/gpu_decode_profile.json)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch
from gpu_engine_bench import Recorder  # sibling script in bench/
from gpu_prefill_profile import timed  # sibling script in bench/

from shared.settings import Settings
from worker.inference.batched import build_batched_engine
from worker.inference.batching.step_runner import CapturedSteps, covering
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams
from worker.inference.families.glm4v_batch import BATCH_SUPPORT
from worker.inference.loader import load_engine
from worker.inference.placeholder.checkpoint import build_checkpoint

# kernel-name fragments → kind (first match wins)
KINDS = [
    ("dequantize", "bnb dequantize"),
    ("kgemm_4bit", "bnb 4-bit gemv"),
    ("fmha", "attention"),
    ("flash", "attention"),
    ("attention", "attention"),
    ("gemm", "dense products"),
    ("sm90_xmma", "dense products"),
    ("cutlass", "dense products"),
    ("nvjet", "dense products"),
]


def kind_of(kernel: str) -> str:
    name = kernel.lower()
    return next((kind for fragment, kind in KINDS if fragment in name), "other")


def profile_step(steps: CapturedSteps, batch: int, window: int, top: int) -> dict[str, Any]:
    """GPU milliseconds of one eager step by kind, and its costliest kernels."""
    from torch.profiler import ProfilerActivity, profile

    step = steps.step
    with torch.inference_mode():
        step(steps.tokens, steps.positions, steps.lengths, batch, window)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step(steps.tokens, steps.positions, steps.lengths, batch, window)
            torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    by_kind: dict[str, float] = {}
    for event in events:
        kind = kind_of(event.key)
        by_kind[kind] = by_kind.get(kind, 0.0) + event.self_device_time_total / 1e3
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    return {
        "gpu_ms_by_kind": {kind: round(ms, 2) for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "gpu_ms_total": round(sum(by_kind.values()), 2),
        "top": [
            {"kernel": e.key[:100], "calls": e.count, "ms": round(e.self_device_time_total / 1e3, 2)}
            for e in events[:top]
        ],
    }


def sampler_ms(engine: Any, settings: Settings) -> dict[str, float]:
    """Milliseconds to pick one token for every slot: greedy, and with the default sampling settings."""
    runner = engine.scheduler.runner
    slots = runner.slots.slots
    vocab = runner.sampler.seen.shape[1]
    logits = torch.randn(slots, vocab, device="cuda", dtype=torch.bfloat16)
    device_slots = torch.arange(slots, device="cuda")
    prompt = torch.arange(1000, device="cuda")
    timings = {}
    for label, temperature, penalty in (
        ("greedy", 0.0, 1.0),
        ("default_sampling", settings.temperature, settings.repetition_penalty),
    ):
        params = GenerationParams(128, temperature, settings.top_p, penalty)
        for slot in range(slots):
            runner.sampler.join(slot, params, prompt)
        pick = partial(runner.sampler.pick, logits, device_slots, list(range(slots)))
        timings[label] = round(1000 * timed(lambda pick=pick: pick().tolist(), runs=10), 2)
    for slot in range(slots):
        runner.sampler.leave(slot)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, default=128)
    parser.add_argument("--seq-tokens", type=int, default=2048)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--quantization", default="nf4")
    args = parser.parse_args()
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    rec = Recorder(out)
    rec.path = out / "gpu_decode_profile.json" if out else None
    root = Path(tempfile.gettempdir(), "glm46v-flash-random")
    build_checkpoint(root, "glm4v", full_size=True, device="cuda")
    settings = Settings(
        model=str(root), quantization=args.quantization, device="cuda", data_dir=Path(tempfile.mkdtemp()),
        gpu_engine="sequential", gpu_max_batch=args.slots, gpu_max_seq_tokens=args.seq_tokens,
    )  # fmt: skip
    base = load_engine(settings)
    assert isinstance(base, HFEngine)
    engine = build_batched_engine(base, BATCH_SUPPORT, settings)
    steps = engine.scheduler.runner.steps
    assert isinstance(steps, CapturedSteps)
    rec.put("device", torch.cuda.get_device_name())
    rec.put("quantization", base.quantization)
    replay = {}
    for batch in sorted({1, 16, 64, steps.batches[-1]}):
        for window in sorted({steps.windows[0], covering(steps.windows, 1280), steps.windows[-1]}):
            graph, _ = steps.graphs[batch, window]
            replay[f"{batch}x{window}"] = round(1000 * timed(graph.replay, runs=20), 2)
    rec.put("captured_step_ms", replay)
    rec.put("sampler_ms", sampler_ms(engine, settings))
    rec.put("eager_step_profile", profile_step(steps, steps.batches[-1], steps.windows[-1], args.top))
    engine.scheduler.close()


if __name__ == "__main__":
    main()
