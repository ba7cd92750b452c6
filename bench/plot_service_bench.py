"""Chart of `gpu_service_bench.py` results: end-to-end latency per task and the burst through the queue.

Usage: .venv/bin/python bench/plot_service_bench.py bench/results/gpu_service_bench_h100_nf4.json
(needs matplotlib; writes the PNG next to the JSON)
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

QUEUE, INFERENCE, OVERHEAD = "#dd8452", "#4c72b0", "#8c8c8c"


def plot_tasks(ax: Any, data: dict[str, Any]) -> None:
    """One stacked bar per job: queue_s, inference_s, and the rest of the end-to-end time."""
    jobs = {"describe (cold)": data["cold_describe"], **data["tasks"]}
    names = list(jobs)
    queue = [jobs[n]["queue_s"] for n in names]
    inference = [jobs[n]["inference_s"] for n in names]
    overhead = [max(jobs[n]["e2e_s"] - q - i, 0) for n, q, i in zip(names, queue, inference, strict=True)]
    ax.bar(names, queue, label="queue_s", color=QUEUE)
    ax.bar(names, inference, bottom=queue, label="inference_s", color=INFERENCE)
    tops = [q + i for q, i in zip(queue, inference, strict=True)]
    ax.bar(names, overhead, bottom=tops, label="overhead (HTTP, SQL, Redis, polling)", color=OVERHEAD)
    for i, name in enumerate(names):
        job = jobs[name]
        label = f"{job['e2e_s']:.1f}s\n+{job['e2e_s'] - job['inference_s']:.2f}s\n{job['completion_tokens']} tok"
        ax.text(i, job["e2e_s"], label, ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("seconds, submit → succeeded seen by polling")
    ax.set_title("One job at a time: end-to-end latency per task")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(loc="upper left", fontsize=7)
    ax.margins(y=0.25)


def plot_burst(ax: Any, burst: dict[str, Any]) -> None:
    """Each burst job as a line from its creation: waiting in the queue, then on the GPU."""
    jobs = sorted(burst["jobs"], key=lambda j: j["created_at"])
    t0 = min(datetime.fromisoformat(j["created_at"]) for j in jobs)
    for row, job in enumerate(sorted(jobs, key=lambda j: j["queue_s"])):
        created = (datetime.fromisoformat(job["created_at"]) - t0).total_seconds()
        ax.barh(row, job["queue_s"], left=created, color=QUEUE)
        ax.barh(row, job["inference_s"], left=created + job["queue_s"], color=INFERENCE)
    ax.set_yticks(range(len(jobs)), [f"job {i + 1}" for i in range(len(jobs))], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first submit")
    ax.set_title(f"Burst of {burst['n']} describe jobs: {burst['images_per_s']:.3f} images/s", fontsize=10)


def plot(path: Path) -> Path:
    """Write `<json stem>.png` beside the JSON and return its path."""
    data = json.loads(path.read_text())
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    plot_tasks(left, data)
    plot_burst(right, data["burst"])
    env, memory, proof = data["env"], data["gpu_memory"], data["cuda_proof"]
    fig.suptitle(
        f"vlmq service end to end: GLM-4.6V-Flash architecture (random weights), {env['quantization']}, "
        f"{env.get('device', 'GPU')}, image {env['image']}, {env['new_tokens']} new tokens; "
        f"model load {data['model_load']['fork_to_loaded_s']} s, worker peak {max(memory['child_peak_gib'].values())} "
        f"GiB, Celery parent CUDA: {proof['parent_has_cuda']}",
        fontsize=8,
    )
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    return out


if __name__ == "__main__":
    print(plot(Path(sys.argv[1])))
