"""Chart of Engine v2 against the engine before it, both on the H100, engine alone at 128 slots x 2,048.

Three panels: the captured decode step by rows and attention window (target 12 ms at 128 rows),
describe and attributes images/s with the single-request time, and where the batching loop's
time went over the describe burst (decode steps against prefills).

Usage: python bench/plot_engine_v2.py OLD_DECODE NEW_DECODE OLD_ENGINE NEW_ENGINE OUT_PNG
  (DECODE JSONs from gpu_decode_profile.py, ENGINE JSONs from gpu_batch_bench.py; needs matplotlib)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

OLD, NEW, TARGET = "#8c8c8c", "#4c72b0", "#c44e52"


def label(data: dict[str, Any]) -> str:
    return f"{data.get('quantization', 'nf4')}"


def decode_steps(ax: Any, old: dict[str, Any], new: dict[str, Any]) -> None:
    for data, color, name in ((old, OLD, "before"), (new, NEW, "Engine v2")):
        steps = data["captured_step_ms"]
        for window, style in (("512", ":"), ("2048", "-")):
            points = sorted((int(k.split("x")[0]), v) for k, v in steps.items() if k.endswith(f"x{window}"))
            ax.plot(
                *zip(*points, strict=True), style, marker="o", color=color, label=f"{name} ({label(data)}), {window}"
            )
    ax.axhline(12, color=TARGET, linestyle="--", linewidth=1, label="target 12 ms at 128 rows")
    ax.set_xlabel("rows in the step")
    ax.set_ylabel("captured step, ms")
    ax.set_title("Decode step (CUDA graph replay)")
    ax.legend(fontsize=7)


def throughput(ax: Any, old: dict[str, Any], new: dict[str, Any]) -> None:
    runs = [(f"before\n({label(old)})", old["batch_128"]), (f"Engine v2\n({label(new)})", new["batch_128"])]
    xs = range(len(runs))
    describe = [r["describe_burst"]["images_per_s"] for _, r in runs]
    attributes = [r["attributes_burst"]["images_per_s"] for _, r in runs]
    ax.bar([x - 0.2 for x in xs], describe, 0.4, color=NEW, label="describe")
    ax.bar([x + 0.2 for x in xs], attributes, 0.4, color="#dd8452", label="attributes")
    for x, (_, run) in zip(xs, runs, strict=True):
        ax.annotate(f"{run['describe_burst']['images_per_s']:g}", (x - 0.2, describe[x]), ha="center", va="bottom")
        ax.annotate(f"{run['attributes_burst']['images_per_s']:g}", (x + 0.2, attributes[x]), ha="center", va="bottom")
        single = statistics.median(run["single_request_s"])
        ax.annotate(f"one request {single:.2f} s", (x, 0.5), ha="center", fontsize=8, color="white")
    ax.set_xticks(list(xs), [name for name, _ in runs])
    ax.set_ylabel("images/s, engine alone, 128 slots")
    ax.set_title("Throughput (512 jobs each)")
    ax.legend(fontsize=8)


def loop_split(ax: Any, old: dict[str, Any], new: dict[str, Any]) -> None:
    runs = [("before", old["batch_128"]), ("Engine v2", new["batch_128"])]
    xs = range(len(runs))
    steps = [r["describe_burst"]["loop"]["step_s"] for _, r in runs]
    prefills = [r["describe_burst"]["loop"]["prefill_s"] for _, r in runs]
    ax.bar(xs, steps, color=NEW, label="decode steps")
    ax.bar(xs, prefills, bottom=steps, color="#55a868", label="prefills")
    for x, (_, run) in zip(xs, runs, strict=True):
        loop = run["describe_burst"]["loop"]
        rate = loop["prefill_tokens"] / loop["prefill_s"]
        ax.annotate(f"{loop['step_ms']} ms a step\n{rate:,.0f} prompt tokens/s", (x, steps[x] + prefills[x]),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_xticks(list(xs), [name for name, _ in runs])
    ax.set_ylabel("loop seconds over the describe burst")
    ax.set_title("Where the loop's time went")
    ax.legend(fontsize=8)


def main() -> None:
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    old_decode, new_decode, old_engine, new_engine = (json.loads(Path(p).read_text()) for p in sys.argv[1:5])
    old_engine.setdefault("quantization", "nf4")
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    decode_steps(axes[0], old_decode, new_decode)
    throughput(axes[1], old_engine, new_engine)
    loop_split(axes[2], old_engine, new_engine)
    fig.suptitle(f"vlmq Engine v2, {new_engine['versions']['device']}, full-size GLM-4.6V-Flash (random weights)")
    fig.tight_layout()
    fig.savefig(sys.argv[5], dpi=110)
    print(sys.argv[5])


if __name__ == "__main__":
    main()
