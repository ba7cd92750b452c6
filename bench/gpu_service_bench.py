"""The whole vlmq service on one GPU, batching worker against the one-at-a-time baseline.

HTTP → SQL job table → Redis → the GPU worker (supervised process, Celery threads feeding the
batching loop) → HTTP polling, with the full-size random-weight GLM-4.6V-Flash checkpoint (built
in a subprocess, so this process never holds a CUDA context). Configurations, each a fresh
service: `sequential` (the generate() worker, one job at a time: the baseline; single requests and
a burst), `batched` (single requests on an idle worker, one job of every task, describe jobs
queued at once through `POST /v1/batches` (four waves of the slots, at least `--saturation`: 256),
half as many attributes jobs, and a chat completion sent while 500 bulk jobs wait; the defaults),
`batched_throughput` (the same workload with 128 slots of 2,048 positions and 4,096-token
prefills, 512 describe jobs: the catalogue setting), `batched_small` (the default
worker capped at 10 GiB). The device tool's 10-minute command limit fits two configs a call:
`--configs sequential,batched_small`, then `--configs batched,batched_throughput --merge FILE`
(FILE: the first call's JSON) gives one record. Records per config
the worker's peak GPU memory (nvidia-smi) and proof that the supervisor holds no CUDA context, and
judges the issue's targets. Outputs are noise; costs are real.

GPU:  bash bench/gpu_service_bench.sh           (writes $OUT/gpu_service_bench.json and the logs)
CPU dry run on the tiny checkpoint:
  PYTHONPATH=. .venv/bin/python bench/gpu_service_bench.py --tiny --saturation 32 --chat-backlog 40 --image 320x240
Exits 1 if the supervisor holds a CUDA context.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from gpu_engine_bench import Recorder  # sibling script in bench/
from gpu_observe import GpuMonitor, cuda_handles, gpu_name, mib_to_gib
from service_stack import Batches, Client, Service, build_model, jpeg, seconds_between  # sibling script in bench/

from shared.settings import Settings

# label → multipart form fields (params as a dict; the follow-up and chat calls are added by `run_tasks`)
TASKS: dict[str, dict[str, Any]] = {
    "describe": {"task": "describe"},
    "ocr": {"task": "ocr"},
    "attributes": {"task": "attributes"},
    "copy": {"task": "copy", "params": {"channel": "social_post", "campaign": "Spring sale, 20% off"}},
    "ask": {"task": "ask", "prompt": "What is the product made of?"},
}


def run_tasks(client: Client, new_tokens: int, json_budget: int) -> dict[str, dict[str, Any]]:
    """One job of each task, one after another, on an otherwise idle service."""
    results: dict[str, dict[str, Any]] = {}
    for label, fields in TASKS.items():
        budget = json_budget if label == "attributes" else new_tokens
        fields = fields | {"params": fields.get("params", {}) | {"max_new_tokens": budget}}
        results[label] = client.run_job(fields)
        print(label, json.dumps(results[label]), flush=True)
    parent = results["ask"]["job_id"]
    params = {"parent_job_id": parent, "max_new_tokens": new_tokens}
    results["ask_followup"] = client.run_job({"task": "ask", "prompt": "Is it waterproof?", "params": params}, False)
    print("ask_followup", json.dumps(results["ask_followup"]), flush=True)
    results["chat_completions"] = client.chat(new_tokens)
    print("chat_completions", json.dumps(results["chat_completions"]), flush=True)
    return results


def burst(client: Client, n: int, new_tokens: int) -> dict[str, Any]:
    """`n` describe jobs submitted at once: throughput through the queue (one GPU child, prefetch 1)."""
    fields = {"task": "describe", "params": {"max_new_tokens": new_tokens}}
    started = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        jobs = list(pool.map(lambda _: client.run_job(fields, poll_s=0.2), range(n)))
    wall_s = time.perf_counter() - started
    server_span_s = seconds_between(min(j["created_at"] for j in jobs), max(j["completed_at"] or "" for j in jobs))
    inference = [j["inference_s"] for j in jobs if j["inference_s"] is not None]
    return {
        "n": n,
        "wall_s": round(wall_s, 2),
        "images_per_s": round(n / wall_s, 4),
        "server_span_s": server_span_s,
        "images_per_s_server": round(n / server_span_s, 4) if server_span_s else None,
        "gpu_bound_images_per_s": round(len(inference) / sum(inference), 4) if inference else None,
        "queue_s": [j["queue_s"] for j in jobs],
        "inference_s": inference,
        "e2e_s": [j["e2e_s"] for j in jobs],
        "jobs": jobs,
    }


def cuda_proof(service: Service, gpu: GpuMonitor) -> dict[str, Any]:
    """The Celery parent must not appear in nvidia-smi nor hold /dev/nvidia* files; its child should."""
    parent, children = service.parent_pid, service.child_pids()
    seen = sorted(gpu.peak_mib_by_pid)
    proof = {
        "nvidia_smi": gpu.available,
        "nvidia_smi_samples": gpu.samples,
        "parent_pid": parent,
        "child_pids": children,
        "web_pids": service.web_pids(),
        "driver_pid": os.getpid(),
        "nvidia_smi_pids_seen": seen,
        "parent_in_nvidia_smi": parent in seen,
        "child_in_nvidia_smi": any(pid in seen for pid in children),
        "parent_proc": cuda_handles(parent),
        "child_proc": {pid: cuda_handles(pid) for pid in children},
    }
    proof["parent_has_cuda"] = proof["parent_in_nvidia_smi"] or bool(proof["parent_proc"]["nvidia_device_files"])
    proof["child_has_cuda"] = proof["child_in_nvidia_smi"] or any(
        p["nvidia_device_files"] for p in proof["child_proc"].values()
    )
    return proof


def percentiles(values: list[float]) -> dict[str, float] | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    at = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p50": round(at(0.5), 3), "p90": round(at(0.9), 3), "max": round(values[-1], 3)}


def saturation(batches: Batches, n: int, fields: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """`n` jobs queued at once: images/s from the first job created to the last one completed."""
    batch_id = batches.submit(n, fields)
    batches.wait(batch_id, timeout_s)
    jobs = batches.jobs(batch_id)
    done = [j for j in jobs if j["status"] == "succeeded"]
    span = seconds_between(min(j["created_at"] for j in jobs), max(j["completed_at"] or "" for j in jobs))
    tokens = [(j["result"] or {}).get("usage", {}).get("completion_tokens", 0) for j in done]
    result = {
        "n": n,
        "succeeded": len(done),
        "errors": sorted({(j.get("error") or {}).get("code") for j in jobs if j["status"] != "succeeded"} - {None}),
        "span_s": span,
        "images_per_s": round(len(done) / span, 2) if span else None,
        "tokens_per_s": round(sum(tokens) / span) if span else None,
        "mean_completion_tokens": round(sum(tokens) / max(1, len(done)), 1),
        "queue_s": percentiles([(j.get("metrics") or {}).get("queue_s") for j in jobs]),
        "inference_s": percentiles([(j.get("metrics") or {}).get("inference_s") for j in jobs]),
    }
    if fields.get("task") == "attributes":
        result["valid_json"] = sum((j["result"] or {}).get("data") is not None for j in done)
    return result


def chat_under_load(client: Client, batches: Batches, queued: int, new_tokens: int) -> dict[str, Any]:
    """One chat completion while `queued` bulk describe jobs wait: the interactive lane at work."""
    batch_id = batches.submit(queued, {"task": "describe", "params": {"max_new_tokens": new_tokens}})
    time.sleep(2.0)  # the worker is busy with the batch before the chat call arrives
    try:
        chat = client.chat(new_tokens)
    finally:
        backlog = batches.http.get(f"{batches.url}/v1/batches/{batch_id}", timeout=30).json()
        batches.cancel(batch_id)
    return chat | {"bulk_queued": queued, "bulk_counts_at_answer": backlog.get("counts")}


def single_requests(client: Client, new_tokens: int, runs: int) -> dict[str, Any]:
    """Describe jobs one after another on an idle worker: submit to `succeeded`, as polled."""
    fields = {"task": "describe", "params": {"max_new_tokens": new_tokens}}
    jobs = [client.run_job(fields, poll_s=0.02) for _ in range(runs)]
    return {"e2e_s": [j["e2e_s"] for j in jobs], "inference_s": [j["inference_s"] for j in jobs], "jobs": jobs}


def cancel_running(client: Client, worker_log: Path, new_tokens: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """A running describe job canceled through the API on an idle worker: seconds from the cancel's
    answer to the worker's log line that generation stopped (its slot freed)."""
    job = client.submit({"task": "describe", "params": {"max_new_tokens": new_tokens}})
    deadline = time.monotonic() + timeout_s
    while client.get_job(job["id"])["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # generating, not only claimed
    if (status := client.cancel(job["id"])) != 200:
        return {"job_id": job["id"], "freed_s": None, "cancel_status": status}  # it ended first (tiny model)
    sent = datetime.now()
    marker = f"job {job['id']} was canceled while running"
    while time.monotonic() < deadline:
        line = next((line for line in worker_log.read_text(errors="replace").splitlines() if marker in line), None)
        if line is not None:
            logged = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return {"job_id": job["id"], "freed_s": round((logged - sent).total_seconds(), 3)}
        time.sleep(0.02)
    return {"job_id": job["id"], "freed_s": None}


# name → (worker settings, workload); the baseline is the one-request-at-a-time generate() worker.
CONFIGS: dict[str, dict[str, str]] = {
    "sequential": {"VLMQ_GPU_ENGINE": "sequential"},
    "batched": {"VLMQ_GPU_ENGINE": "batched"},
    "batched_throughput": {
        "VLMQ_GPU_ENGINE": "batched",
        "VLMQ_GPU_MAX_BATCH": "128",
        "VLMQ_GPU_MAX_SEQ_TOKENS": "2048",
        "VLMQ_GPU_PREFILL_TOKENS": "4096",
    },
    "batched_small": {"VLMQ_GPU_ENGINE": "batched", "VLMQ_GPU_MEMORY_GIB": "10"},
}


def saturation_jobs(at_least: int, config: dict[str, str]) -> int:
    """Describe jobs for the saturation run: four waves of the worker's slots, and `at_least`.

    With fewer waves, the first wave's prefills and the last one's drain weigh on the rate
    (256 jobs on 128 slots gave 6.3 images/s through the service where 512 gave the engine 8.2).
    """
    return max(at_least, 4 * int(config.get("VLMQ_GPU_MAX_BATCH", Settings().gpu_max_batch)))


def run_config(name: str, args: Any, model: Path, root: Path, out: Path, rec: Recorder) -> list[str]:
    """Start the service with config `name`, run its workload, stop it; returns failures."""
    gpu = GpuMonitor(args.gpu_poll)
    gpu.start()
    quantization = "fp32" if args.tiny else args.quantization
    service = Service(root / f"{name}-{os.getpid()}", out / name, model, quantization, args.tiny, CONFIGS[name])
    size = tuple(map(int, args.image.split("x")))
    image = jpeg((size[0], size[1]))
    result: dict[str, Any] = {"settings": CONFIGS[name]}
    try:
        result["start_to_ready_s"] = service.wait_ready(args.ready_timeout)
        client = Client(service.url, image, args.job_timeout)
        batches = Batches(service.url, image)
        result["cold_describe"] = client.run_job({"task": "describe", "params": {"max_new_tokens": args.new_tokens}})
        result["single_request"] = single_requests(client, args.new_tokens, 3)
        rec.data[name] = result
        rec.save()
        if name == "sequential":
            result["burst"] = burst(client, args.burst, args.new_tokens)
        elif name in ("batched", "batched_throughput"):
            result["cancel_running"] = cancel_running(client, service.worker_log, args.cancel_tokens)
            result["tasks"] = run_tasks(client, args.new_tokens, args.json_budget)
            rec.save()
            describe = {"task": "describe", "params": {"max_new_tokens": args.new_tokens}}
            jobs = saturation_jobs(args.saturation, CONFIGS[name])
            result["saturation_describe"] = saturation(batches, jobs, describe, args.batch_timeout)
            print("saturation_describe", json.dumps(result["saturation_describe"]), flush=True)
            rec.save()
            result["saturation_attributes"] = saturation(batches, jobs // 2, {"task": "attributes"}, args.batch_timeout)
            print("saturation_attributes", json.dumps(result["saturation_attributes"]), flush=True)
            rec.save()
            result["chat_under_load"] = chat_under_load(client, batches, args.chat_backlog, args.new_tokens)
        else:
            describe = {"task": "describe", "params": {"max_new_tokens": args.new_tokens}}
            result["saturation_describe"] = saturation(batches, args.saturation // 4, describe, args.batch_timeout)
        result["cuda_proof"] = cuda_proof(service, gpu)
    finally:
        service.close()
        gpu.stop()
    proof = result.get("cuda_proof", {})
    peaks = [mib_to_gib(gpu.peak_mib_by_pid.get(pid, 0)) for pid in proof.get("child_pids", [])]
    result["gpu_memory"] = {
        "worker_peak_gib": max(peaks, default=None) if gpu.available else None,
        "gpu_used_peak_gib": mib_to_gib(gpu.peak_gpu_mib) if gpu.available else None,
    }
    rec.put(name, result)
    failures = (
        [f"{name}: the supervisor {proof['parent_pid']} holds a CUDA context"] if proof.get("parent_has_cuda") else []
    )
    return failures


TARGETS = {  # (path in a batched config's result, comparison, target) from issue 18 ("Engine v2")
    "describe images/s at saturation": (("saturation_describe", "images_per_s"), ">=", 16.0),
    "attributes images/s at saturation": (("saturation_attributes", "images_per_s"), ">=", 12.0),
    "one request on an idle worker, s": (("single_request", "e2e_s"), "<=", 1.0),
    "chat answered with 500 queued, s": (("chat_under_load", "e2e_s"), "<=", 3.0),
    "canceled running row freed, s": (("cancel_running", "freed_s"), "<=", 0.5),
}
SMALL_TARGETS = {
    "peak GPU memory, small setting, GiB": (("gpu_memory", "worker_peak_gib"), "<=", 10.0),
    "describe images/s, small setting": (("saturation_describe", "images_per_s"), ">=", 1.5),
}


def judge(data: dict[str, Any]) -> dict[str, Any]:
    """Each target, for each batched config measured, with the value and whether it was met."""
    checks = [
        (f"{config}: {label}", config, target)
        for config in ("batched", "batched_throughput")
        for label, target in TARGETS.items()
    ]
    checks += [(f"batched_small: {label}", "batched_small", target) for label, target in SMALL_TARGETS.items()]
    verdicts = {}
    for label, config, ((section, key), op, target) in checks:
        if config not in data:
            continue
        value = data[config].get(section, {}).get(key)
        if isinstance(value, list):
            value = statistics.median(value) if value else None
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        verdicts[label] = {"value": value, "target": f"{op} {target}", "met": met}
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoint on CPU, fp32 (dry run)")
    parser.add_argument("--configs", default="sequential,batched,batched_small")
    parser.add_argument("--quantization", default="auto")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--json-budget", type=int, default=256, help="max_new_tokens of the single attributes job")
    parser.add_argument("--burst", type=int, default=8, help="describe jobs at once for the sequential baseline")
    parser.add_argument("--saturation", type=int, default=256, help="describe jobs queued at once (batched)")
    parser.add_argument("--chat-backlog", type=int, default=500, help="bulk jobs queued before the chat call")
    parser.add_argument("--cancel-tokens", type=int, default=800, help="max_new_tokens of the job canceled running")
    parser.add_argument("--image", default="1024x768")
    parser.add_argument("--job-timeout", type=float, default=300.0)
    parser.add_argument("--batch-timeout", type=float, default=240.0)
    parser.add_argument("--ready-timeout", type=float, default=420.0)
    parser.add_argument("--gpu-poll", type=float, default=0.5, help="seconds between nvidia-smi samples")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "vlmq-service-bench"))
    parser.add_argument("--merge", type=Path, help="an earlier call's JSON whose configs this run adds to")
    args = parser.parse_args()
    root = Path(args.root)
    out = Path(os.environ.get("OUT") or root / "out")
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(None)
    rec.path = out / "gpu_service_bench.json"
    if args.merge:
        rec.data.update(json.loads(args.merge.read_text()))
    rec.put("env", {
        "device": gpu_name(), "torch": version("torch"), "transformers": version("transformers"),
        "quantization": "fp32" if args.tiny else args.quantization, "full_size": not args.tiny, "image": args.image,
        "new_tokens": args.new_tokens, "saturation": args.saturation, "chat_backlog": args.chat_backlog,
    })  # fmt: skip
    model = root / ("tiny-glm4v" if args.tiny else "glm46v-flash-random")
    rec.put("build_save_s", build_model(model, args.tiny))
    failures: list[str] = list(rec.data.get("failures", []))
    for name in args.configs.split(","):
        (out / name).mkdir(exist_ok=True)
        failures += run_config(name, args, model, root, out, rec)
    rec.put("targets", judge(rec.data))
    rec.put("failures", failures)
    for label, verdict in rec.data["targets"].items():
        print(
            f"{label:40} {verdict['value']!s:>10} {verdict['target']:>8}  {'met' if verdict['met'] else verdict['met']}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
