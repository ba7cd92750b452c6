"""The batching engine on the full-size GLM-4.6V-Flash architecture (random weights): throughput,
latency and memory against batch size, next to the one-request-at-a-time `generate()` engine.

Loads the model once (nf4 by default) through the service's own loader, then for each batch size
builds the batching loop on it (KV slots, captured decode graphs), and measures: one request on
an idle engine; a saturating burst of describe requests (standard request: 1024x768 photo, 128 new
tokens, default sampling); a burst of `attributes` requests (schema-constrained JSON) at the
largest batch; greedy outputs batched against the same requests one at a time; peak GPU memory.
Requests enter from threads, as Celery's worker threads hand them over in the service.

GPU:  OUT=/some/dir python3 bench/gpu_batch_bench.py --batches 8,16,32,64   (writes $OUT/gpu_batch_bench.json)
CPU dry run on the tiny checkpoint:  PYTHONPATH=. .venv/bin/python bench/gpu_batch_bench.py --tiny
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from gpu_engine_bench import Recorder, gib, product_photo  # sibling script in bench/

from shared.settings import Settings
from worker.inference.batched import BatchedEngine, build_batched_engine
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, InferenceError, InferenceRequest
from worker.inference.families.glm4v_batch import BATCH_SUPPORT
from worker.inference.loader import load_engine
from worker.inference.placeholder.checkpoint import build_checkpoint


def request(task: str, new: int, settings: Settings, greedy: bool = False, size: tuple[int, int] = (1024, 768)) -> Any:
    params = GenerationParams(
        max_new_tokens=new,
        temperature=0.0 if greedy else settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
    )
    return InferenceRequest(task=task, image=product_photo(size), generation=params)  # type: ignore[arg-type]


def burst(engine: Any, requests: list[Any], threads: int) -> dict[str, Any]:
    """Run `requests` from `threads` caller threads at once; images/s, tokens/s and failures."""
    sync()
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(lambda r: attempt(engine, r), requests))
    sync()
    seconds = time.perf_counter() - started
    done = [o for o in outcomes if not isinstance(o, InferenceError)]
    tokens = sum(o.usage["completion_tokens"] for o in done)
    return {
        "requests": len(requests),
        "succeeded": len(done),
        "errors": sorted({o.code for o in outcomes if isinstance(o, InferenceError)}),
        "seconds": round(seconds, 2),
        "images_per_s": round(len(done) / seconds, 2),
        "tokens_per_s": round(tokens / seconds),
        "mean_completion_tokens": round(tokens / max(1, len(done)), 1),
        "outputs": done,
    }


def attempt(engine: Any, req: Any) -> Any:
    try:
        return engine.run(req)
    except InferenceError as exc:
        return exc


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib() -> float:
    return gib(torch.cuda.max_memory_reserved()) if torch.cuda.is_available() else 0.0


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def single_latency(engine: Any, settings: Settings, new: int, runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        sync()
        started = time.perf_counter()
        engine.run(request("describe", new, settings))
        sync()
        times.append(round(time.perf_counter() - started, 3))
    return times


def measure_batch(base: HFEngine, settings: Settings, slots: int, args: Any, rec: Recorder) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    reset_peak()
    started = time.perf_counter()
    engine: BatchedEngine = build_batched_engine(
        base, BATCH_SUPPORT, settings.model_copy(update={"gpu_max_batch": slots})
    )
    result: dict[str, Any] = {
        "slots": engine.plan.slots,
        "capacity": engine.plan.capacity,
        "build_s": round(time.perf_counter() - started, 1),
        "after_build_gib": peak_gib(),
    }
    engine.run(request("describe", 4, settings))  # first request after the build
    result["single_request_s"] = single_latency(engine, settings, args.new)
    jobs = max(args.min_jobs, 4 * engine.plan.slots)
    reset_peak()
    before = engine.scheduler.stats.as_dict()
    describe = burst(engine, [request("describe", args.new, settings) for _ in range(jobs)], engine.plan.slots)
    describe.pop("outputs")
    describe["loop"] = loop_delta(before, engine.scheduler.stats.as_dict())
    describe["peak_gib"] = peak_gib()
    result["describe_burst"] = describe
    rec.put(f"batch_{slots}", result)
    if slots == max(args.batch_sizes):
        reset_peak()
        before = engine.scheduler.stats.as_dict()
        attrs = burst(engine, [request("attributes", 256, settings) for _ in range(jobs)], engine.plan.slots)
        outputs = attrs.pop("outputs")
        attrs["valid_json"] = sum(o.data is not None for o in outputs)
        attrs["finish_reasons"] = sorted({o.finish_reason for o in outputs})
        attrs["peak_gib"] = peak_gib()
        attrs["loop"] = loop_delta(before, engine.scheduler.stats.as_dict())
        result["attributes_burst"] = attrs
        greedy = [request("describe", args.new, settings, greedy=True, size=(1024 - 64 * i, 768)) for i in range(8)]
        alone = [engine.run(r).text for r in greedy]
        together = [o.text for o in burst(engine, greedy, len(greedy))["outputs"]]
        matches = sum(a == b for a, b in zip(alone, together, strict=True))
        result["greedy_batched_equals_alone"] = f"{matches}/{len(greedy)}"
        result["greedy_common_prefix_chars"] = [common_prefix(a, b) for a, b in zip(alone, together, strict=True)]
        result["greedy_alone_chars"] = [len(a) for a in alone]
        rec.put(f"batch_{slots}", result)
    engine.scheduler.close()


def loop_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The batching loop's time split over one burst: decode steps (and ms each) vs prefills."""
    keys = ("steps", "step_s", "prefills", "prefill_tokens", "prefill_s")
    delta = {key: round(after[key] - before[key], 2) for key in keys}
    delta["step_ms"] = round(1000 * delta["step_s"] / max(1, delta["steps"]), 2)
    return delta


def common_prefix(a: str, b: str) -> int:
    """Characters two outputs share before they part (random weights amplify any numeric difference)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny checkpoint on CPU (a dry run)")
    parser.add_argument("--quantization", default=None)
    parser.add_argument("--batches", default="8,16,32,64")
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--min-jobs", type=int, default=64)
    parser.add_argument("--prefill-tokens", type=int, default=8192)
    parser.add_argument("--seq-tokens", type=int, default=Settings().gpu_max_seq_tokens, help="KV positions per slot")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the one-at-a-time generate() baseline")
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batches.split(",")]
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    rec = Recorder(out)
    rec.path = out / "gpu_batch_bench.json" if out else None
    root = Path(tempfile.gettempdir(), "glm46v-flash-random" if not args.tiny else "glm46v-tiny-bench")
    started = time.perf_counter()
    device = "cpu" if args.tiny else "cuda"
    build_checkpoint(root, "glm4v", full_size=not args.tiny, device=device)
    rec.put("checkpoint_build_s", round(time.perf_counter() - started, 1))
    settings = Settings(
        model=str(root), quantization=args.quantization or ("fp32" if args.tiny else "auto"), device=device,
        data_dir=Path(tempfile.mkdtemp()), gpu_engine="sequential", gpu_prefill_tokens=args.prefill_tokens,
        gpu_max_seq_tokens=args.seq_tokens,
    )  # fmt: skip
    device_name = "cpu" if args.tiny else torch.cuda.get_device_name()
    rec.put("versions", {"torch": torch.__version__, "device": device_name})
    started = time.perf_counter()
    base = load_engine(settings)
    assert isinstance(base, HFEngine)
    rec.put("load", {"seconds": round(time.perf_counter() - started, 1), "weights_gib": peak_gib()})
    rec.put("quantization", base.quantization)
    if not args.skip_baseline:
        base.run(request("describe", 4, settings))
        latency = single_latency(base, settings, args.new, runs=2)
        baseline = {"single_request_s": latency, "images_per_s": round(1 / statistics.median(latency), 3)}
        rec.put("baseline_generate", baseline)
    for slots in args.batch_sizes:
        measure_batch(base, settings, slots, args, rec)


if __name__ == "__main__":
    main()
