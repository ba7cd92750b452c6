"""Chart of the batching worker's GPU runs against issue 18's targets ("Engine v2").

Three panels: images/s through the whole service per configuration (target lines 16 and 12),
latency of one request on an idle worker and of a chat call under a 500-job backlog (targets
1 s and 3 s), and the engine alone by batch size (images/s, with peak GPU memory beside it).

Usage: python bench/plot_batching.py SERVICE_JSON ENGINE_JSON [ENGINE_JSON ...] OUT_PNG
  (SERVICE_JSON from gpu_service_bench.py, ENGINE_JSONs from gpu_batch_bench.py; needs matplotlib)
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

DESCRIBE, ATTRIBUTES, TARGET = "#4c72b0", "#dd8452", "#c44e52"


def service_throughput(ax: Any, data: dict[str, Any]) -> None:
    labels, describe, attributes = [], [], []
    for name, section in data.items():
        if not isinstance(section, dict) or "settings" not in section:
            continue
        saturation = section.get("saturation_describe") or {}
        labels.append(name.replace("_", "\n"))
        describe.append(saturation.get("images_per_s") or (section.get("burst") or {}).get("images_per_s", 0))
        attributes.append((section.get("saturation_attributes") or {}).get("images_per_s", 0))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], describe, 0.4, label="describe", color=DESCRIBE)
    ax.bar([x + 0.2 for x in xs], attributes, 0.4, label="attributes", color=ATTRIBUTES)
    for x, value in zip(xs, describe, strict=True):
        ax.annotate(f"{value:g}", (x - 0.2, value), ha="center", va="bottom", fontsize=8)
    ax.axhline(16, color=TARGET, linestyle="--", linewidth=1, label="targets (16, 12)")
    ax.axhline(12, color=TARGET, linestyle=":", linewidth=1)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("images/s, whole service")
    ax.set_title("Throughput at saturation")
    ax.legend(fontsize=8)


def service_latency(ax: Any, data: dict[str, Any]) -> None:
    bars: list[tuple[str, float, float]] = []
    for name in ("sequential", "batched", "batched_throughput", "batched_small"):
        section = data.get(name) or {}
        if single := (section.get("single_request") or {}).get("e2e_s"):
            bars.append((f"{name}\nidle", statistics.median(single), 1.0))
        if chat := section.get("chat_under_load"):
            bars.append((f"{name}\nchat, 500 queued", chat["e2e_s"], 3.0))
    xs = range(len(bars))
    ax.bar(xs, [b[1] for b in bars], color=DESCRIBE)
    for x, (_, value, target) in zip(xs, bars, strict=True):
        ax.annotate(f"{value:.1f}", (x, value), ha="center", va="bottom", fontsize=8)
        ax.hlines(target, x - 0.4, x + 0.4, color=TARGET, linestyle="--", linewidth=1)
    ax.set_xticks(list(xs), [b[0].replace("_", "\n", 1) for b in bars], fontsize=7)
    ax.set_ylabel("submit to succeeded, s (target dashed)")
    ax.set_title("Latency")


def engine_by_batch(ax: Any, engines: list[dict[str, Any]]) -> None:
    memory = ax.twinx()
    for data, marker in zip(engines, "os^", strict=False):
        runs = sorted((v for k, v in data.items() if k.startswith("batch_")), key=lambda v: v["slots"])
        if not runs:
            continue
        label = f"{runs[0]['capacity']} positions/slot"
        slots = [r["slots"] for r in runs]
        ax.plot(slots, [r["describe_burst"]["images_per_s"] for r in runs], marker=marker, color=DESCRIBE, label=label)
        memory.plot(slots, [r["describe_burst"]["peak_gib"] for r in runs], marker=marker, color=ATTRIBUTES, ls=":")
    ax.axhline(16, color=TARGET, linestyle="--", linewidth=1)
    ax.set_xlabel("slots (batch size)")
    ax.set_ylabel("images/s, engine alone (solid)")
    memory.set_ylabel("peak GiB reserved (dotted)")
    ax.set_title("Engine by batch size")
    ax.legend(fontsize=8, loc="upper left")


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    service = json.loads(Path(sys.argv[1]).read_text())
    engines = [json.loads(Path(p).read_text()) for p in sys.argv[2:-1]]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    service_throughput(axes[0], service)
    service_latency(axes[1], service)
    engine_by_batch(axes[2], engines)
    env = service.get("env", {})
    fig.suptitle(f"vlmq batching worker, {env.get('device', '?')}, {env.get('quantization', '?')}, {env.get('image')}")
    fig.tight_layout()
    fig.savefig(sys.argv[-1], dpi=110)
    print(sys.argv[-1])


if __name__ == "__main__":
    main()
