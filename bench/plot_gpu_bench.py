"""Chart of `gpu_engine_bench.py` results: latency per task and peak GPU memory against the 10 GiB promise.

Usage: .venv/bin/python bench/plot_gpu_bench.py bench/results/gpu_engine_bench_h100_nf4.json
(needs matplotlib; writes the PNG next to the JSON)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

MEMORY_TARGET_GIB = 10.0


def plot(path: Path) -> Path:
    """Write `<json stem>.png` beside the JSON and return its path."""
    data = json.loads(path.read_text())
    tasks = {name: t for name, t in data["tasks"].items() if "error" not in t}
    names = list(tasks)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1.2]})
    prefill = [tasks[n]["prefill_s"] for n in names]
    decode = [tasks[n]["latency_s"] - tasks[n]["prefill_s"] for n in names]
    left.bar(names, prefill, label="prefill (time to first token)", color="#4c72b0")
    left.bar(names, decode, bottom=prefill, label="decode", color="#92c5de")
    for i, name in enumerate(names):
        t = tasks[name]
        left.text(i, t["latency_s"], f"{t['latency_s']:.1f}s\n{t['completion_tokens']:.0f} tok", ha="center",
                  va="bottom", fontsize=8)  # fmt: skip
    left.set_ylabel("seconds per request (median)")
    left.set_title("Latency per task, batch 1")
    left.legend(loc="lower right", fontsize=8)
    left.margins(y=0.2)
    peaks = [tasks[n].get("peak_gib", 0) for n in names]
    right.bar(["weights", "peak"], [data["load"].get("weights_gib", 0), max(peaks)], color=["#55a868", "#c44e52"])
    right.axhline(MEMORY_TARGET_GIB, color="black", linestyle="--", linewidth=1)
    right.text(0.5, MEMORY_TARGET_GIB, f"{MEMORY_TARGET_GIB:.0f} GiB target", ha="center", va="bottom", fontsize=8)
    right.set_ylim(0, MEMORY_TARGET_GIB * 1.25)
    right.set_ylabel("GiB")
    right.set_title("GPU memory")
    env = data["env"]
    fig.suptitle(
        f"GLM-4.6V-Flash architecture (random weights), {env['quantization']}, {env['device']}, image {env['image']}, "
        f"torch {env['torch']}, transformers {env['transformers']}",
        fontsize=9,
    )
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    return out


if __name__ == "__main__":
    print(plot(Path(sys.argv[1])))
