"""The whole vlmq service on one GPU: HTTP → SQL job table → Redis → Celery GPU worker → HTTP polling.

Builds the full-size random-weight GLM-4.6V-Flash checkpoint (in a subprocess, so this
process never holds a CUDA context), starts a private Redis, migrates a SQLite database
and starts the production processes `vlmq worker gpu` and `vlmq web` (gunicorn). Then,
over real HTTP, it runs one job of every task (multipart like curl, a follow-up `ask`
by `parent_job_id`, and one `/v1/chat/completions` call) and a burst of describe jobs
submitted at once. It records per job the submit latency, the job's own `queue_s` and
`inference_s` and the end-to-end wall time until `succeeded`; the burst's images/s; the
worker child's model load time and peak GPU memory (nvidia-smi, polled); and proof that
the Celery parent holds no CUDA context while its child does. Outputs are noise; costs
are real.

GPU:  bash bench/gpu_service_bench.sh           (writes $OUT/gpu_service_bench.json and the logs)
CPU dry run on the tiny checkpoint:  PYTHONPATH=. .venv/bin/python bench/gpu_service_bench.py --tiny
Exits 1 if a job did not succeed or the Celery parent holds a CUDA context.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import requests
from gpu_engine_bench import Recorder, product_photo  # sibling script in bench/
from gpu_observe import GpuMonitor, cuda_handles, gpu_name, mib_to_gib

from shared.migrate import upgrade_to_head
from vlmq.processes import stop
from vlmq.redis_server import free_port, start_redis

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"succeeded", "failed", "canceled"}
# vlmq.cli's log format: "%(asctime)s %(levelname)s %(name)s: %(message)s" (local time)
LOADED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO worker\.app: model .* loaded in worker process")

# label → multipart form fields (params as a dict; the follow-up and chat calls are added by `run_tasks`)
TASKS: dict[str, dict[str, Any]] = {
    "describe": {"task": "describe"},
    "ocr": {"task": "ocr"},
    "attributes": {"task": "attributes"},
    "copy": {"task": "copy", "params": {"channel": "social_post", "campaign": "Spring sale, 20% off"}},
    "ask": {"task": "ask", "prompt": "What is the product made of?"},
}


class Service:
    """Redis, `vlmq worker gpu` and `vlmq web` as production starts them, with logs in `log_dir`."""

    def __init__(self, root: Path, log_dir: Path, model: Path, quantization: str, tiny: bool) -> None:
        data_dir = root / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        redis_port, web_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{web_port}"
        pythonpath = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(pythonpath),
            PYTHONUNBUFFERED="1",
            VLMQ_DATA_DIR=str(data_dir),
            VLMQ_DATABASE_URL=f"sqlite:///{data_dir / 'vlmq.db'}",
            VLMQ_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            VLMQ_MODEL=str(model),
            VLMQ_QUANTIZATION=quantization,
        )
        if tiny:
            self.env["VLMQ_DEVICE"] = "cpu"
        upgrade_to_head(self.env["VLMQ_DATABASE_URL"])
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.children["redis"] = start_redis(data_dir / "redis", redis_port, self.env)
        self.worker_log, self.web_log = log_dir / "worker.log", log_dir / "web.log"
        self.worker_started = time.monotonic()
        self.children["worker"] = self._spawn(["worker", "gpu"], self.worker_log)
        self.children["web"] = self._spawn(["web", "--port", str(web_port)], self.web_log)

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "vlmq.cli", *args],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds from starting the worker until /readyz answers 200 (database, broker, a live GPU worker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [name for name, child in self.children.items() if child.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited during start-up; see {self.worker_log} and {self.web_log}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return round(time.monotonic() - self.worker_started, 1)
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"not ready within {timeout_s:g} s; see {self.worker_log}")

    @property
    def parent_pid(self) -> int:
        """The Celery parent: `vlmq worker gpu` runs `celery.worker_main` in its own process."""
        return self.children["worker"].pid

    def child_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.parent_pid).children()]

    def web_pids(self) -> list[int]:
        web = psutil.Process(self.children["web"].pid)
        return [web.pid, *(child.pid for child in web.children(recursive=True))]

    def close(self) -> None:
        for name in ("web", "worker", "redis"):
            if name in self.children:
                stop(self.children[name])


def build_model(root: Path, tiny: bool) -> float:
    """Build the checkpoint in a child process (CUDA for the full size) and return the seconds it took."""
    code = (
        "import sys; from pathlib import Path; from worker.inference.tiny import build_checkpoint; "
        "build_checkpoint(Path(sys.argv[1]), 'glm4v', full_size=sys.argv[2] == 'full', device=sys.argv[3])"
    )
    started = time.perf_counter()
    args = [str(root), "tiny" if tiny else "full", "cpu" if tiny else "cuda"]
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=REPO)
    return round(time.perf_counter() - started, 1)


def model_load(worker_log: Path, child_pid: int) -> dict[str, Any]:
    """Seconds from the child's fork to its "model ... loaded" log line (torch imports and weights included)."""
    for line in worker_log.read_text(errors="replace").splitlines():
        if match := LOADED_LINE.match(line):
            loaded = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            return {"fork_to_loaded_s": round(loaded - psutil.Process(child_pid).create_time(), 2), "line": line}
    return {"fork_to_loaded_s": None, "line": None}


def jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    product_photo(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


def job_record(job: dict[str, Any], e2e_s: float, submit_s: float | None) -> dict[str, Any]:
    """The numbers kept per job; overhead is what is neither queueing nor inference (HTTP, SQL, polling)."""
    metrics = job.get("metrics") or {}
    queue_s, inference_s = metrics.get("queue_s"), metrics.get("inference_s")
    usage = (job.get("result") or {}).get("usage") or {}
    record = {
        "job_id": job["id"],
        "status": job["status"],
        "error": job.get("error"),
        "submit_s": submit_s,
        "queue_s": queue_s,
        "inference_s": inference_s,
        "e2e_s": round(e2e_s, 3),
        "overhead_s": round(e2e_s - queue_s - inference_s, 3) if None not in (queue_s, inference_s) else None,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "created_at": job.get("created_at"),
        "completed_at": job.get("completed_at"),
    }
    if job["task"] == "attributes":
        record["valid_json"] = (job.get("result") or {}).get("data") is not None
    return record


class Client:
    """The API as a shop would use it: multipart submits, then polling `GET /v1/jobs/{id}`."""

    def __init__(self, url: str, image: bytes, timeout_s: float) -> None:
        self.url, self.image, self.timeout_s = url, image, timeout_s
        self.http = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self.http, "session"):
            self.http.session = requests.Session()
        return self.http.session

    def get_job(self, job_id: str) -> dict[str, Any]:
        response = self._session().get(f"{self.url}/v1/jobs/{job_id}", timeout=30)
        response.raise_for_status()
        return response.json()

    def run_job(self, fields: dict[str, Any], with_image: bool = True, poll_s: float = 0.05) -> dict[str, Any]:
        """Submit one job (multipart, like `curl -F`) and poll it until it ends."""
        form = {k: (None, json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items()}
        if with_image:
            form["image"] = ("product.jpg", self.image, "image/jpeg")
        started = time.perf_counter()
        response = self._session().post(f"{self.url}/v1/jobs", files=form, timeout=30)
        submit_s = round(time.perf_counter() - started, 4)
        if response.status_code != 202:
            raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
        job = response.json()
        deadline = started + self.timeout_s
        while job["status"] not in TERMINAL and time.perf_counter() < deadline:
            time.sleep(poll_s)
            job = self.get_job(job["id"])
        return job_record(job, time.perf_counter() - started, submit_s)

    def chat(self, max_tokens: int) -> dict[str, Any]:
        """One OpenAI-style chat call (held open until the answer); its job is then read for the metrics."""
        data_uri = "data:image/jpeg;base64," + base64.b64encode(self.image).decode()
        body = {
            "model": "glm-4.6v-flash",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What material is this bag?"},
                {"type": "image_url", "image_url": {"url": data_uri}},
            ]}],
        }  # fmt: skip
        started = time.perf_counter()
        response = self._session().post(f"{self.url}/v1/chat/completions", json=body, timeout=self.timeout_s)
        e2e_s = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"chat answered {response.status_code}: {response.text[:300]}")
        job = self.get_job(response.json()["id"].removeprefix("chatcmpl-"))
        return job_record(job, e2e_s, None) | {"http_status": response.status_code}


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoint on CPU, fp32 (dry run)")
    parser.add_argument("--quantization", default="nf4")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--json-budget", type=int, default=1024, help="max_new_tokens of the attributes job")
    parser.add_argument("--burst", type=int, default=8, help="describe jobs submitted at once")
    parser.add_argument("--image", default="1024x768")
    parser.add_argument("--job-timeout", type=float, default=300.0)
    parser.add_argument("--ready-timeout", type=float, default=420.0)
    parser.add_argument("--gpu-poll", type=float, default=0.5, help="seconds between nvidia-smi samples")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "vlmq-service-bench"))
    args = parser.parse_args()
    root = Path(args.root)
    out = Path(os.environ.get("OUT") or root / "out")
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(None)
    rec.path = out / "gpu_service_bench.json"
    quantization = "fp32" if args.tiny else args.quantization
    rec.put("env", {
        "device": gpu_name(), "torch": version("torch"), "transformers": version("transformers"),
        "quantization": quantization, "full_size": not args.tiny, "image": args.image, "new_tokens": args.new_tokens,
        "json_budget": args.json_budget, "burst": args.burst, "gpu_poll_s": args.gpu_poll,
    })  # fmt: skip

    model = root / ("tiny-glm4v" if args.tiny else "glm46v-flash-random")
    rec.put("build_save_s", build_model(model, args.tiny))
    gpu = GpuMonitor(args.gpu_poll)
    gpu.start()
    service = Service(root / f"run-{os.getpid()}", out, model, quantization, args.tiny)
    failures: list[str] = []
    try:
        rec.put("start_to_ready_s", service.wait_ready(args.ready_timeout))
        child = service.child_pids()[0]
        rec.put("model_load", model_load(service.worker_log, child))
        size = tuple(map(int, args.image.split("x")))
        client = Client(service.url, jpeg((size[0], size[1])), args.job_timeout)
        cold = client.run_job({"task": "describe", "params": {"max_new_tokens": args.new_tokens}})
        rec.put("cold_describe", cold)  # the first job after start (CUDA kernels and caches warm up)
        rec.put("tasks", run_tasks(client, args.new_tokens, args.json_budget))
        rec.put("burst", burst(client, args.burst, args.new_tokens))
        rec.put("cuda_proof", cuda_proof(service, gpu))
    finally:
        service.close()
        gpu.stop()
    proof = rec.data["cuda_proof"]
    rec.put("gpu_memory", {
        "child_peak_gib": {pid: mib_to_gib(gpu.peak_mib_by_pid.get(pid, 0)) for pid in proof["child_pids"]},
        "gpu_used_peak_gib": mib_to_gib(gpu.peak_gpu_mib) if gpu.available else None,
        "gpu_used_baseline_gib": mib_to_gib(gpu.baseline_gpu_mib) if gpu.baseline_gpu_mib is not None else None,
    })  # fmt: skip
    jobs = [rec.data["cold_describe"], *rec.data["tasks"].values(), *rec.data["burst"]["jobs"]]
    failures += [f"job {j['job_id']} {j['status']}: {j['error']}" for j in jobs if j["status"] != "succeeded"]
    if proof["parent_has_cuda"]:
        failures.append(f"the Celery parent {proof['parent_pid']} holds a CUDA context")
    if gpu.available and not proof["child_has_cuda"]:
        failures.append("the GPU child shows no CUDA context: the proof proves nothing")
    rec.put("statuses", {"succeeded": sum(j["status"] == "succeeded" for j in jobs), "total": len(jobs)})
    rec.put("failures", failures)
    summarize(rec.data)
    return 1 if failures else 0


def summarize(data: dict[str, Any]) -> None:
    """A human summary of the JSON."""
    print(f"\nready {data['start_to_ready_s']} s after start; model load {data['model_load']['fork_to_loaded_s']} s")
    print(f"{'task':18} {'status':10} {'submit':>7} {'queue':>7} {'infer':>7} {'e2e':>7} {'overhd':>7}  tokens")
    for label, j in {"cold_describe": data["cold_describe"], **data["tasks"]}.items():
        numbers = [j["submit_s"] or 0, j["queue_s"] or 0, j["inference_s"] or 0, j["e2e_s"], j["overhead_s"] or 0]
        print(f"{label:18} {j['status']:10} " + " ".join(f"{n:7.3f}" for n in numbers) + f"  {j['completion_tokens']}")
    b = data["burst"]
    print(f"burst of {b['n']}: {b['images_per_s']} images/s, {b['wall_s']} s wall")
    print(f"  GPU-bound: {b['gpu_bound_images_per_s']} images/s; queue_s {b['queue_s']}")
    print(f"GPU memory: {data['gpu_memory']}")
    proof = data["cuda_proof"]
    print(f"Celery parent {proof['parent_pid']} has CUDA: {proof['parent_has_cuda']} {proof['parent_proc']}")
    print(
        f"child {proof['child_pids']} has CUDA: {proof['child_has_cuda']}"
        f"; nvidia-smi saw {proof['nvidia_smi_pids_seen']}"
    )
    print(f"jobs succeeded: {data['statuses']['succeeded']}/{data['statuses']['total']}; failures: {data['failures']}")


if __name__ == "__main__":
    sys.exit(main())
