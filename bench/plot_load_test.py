"""Chart of `load_test.py` results: requests/s and p50/p99 per phase and database, with the targets.

Usage: .venv/bin/python bench/plot_load_test.py bench/results/load_test.json
(needs matplotlib, `pip install -e '.[bench]'`; writes the PNG next to the JSON)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

PANELS = (("POST /v1/jobs", ("submit", "submit_2x"), 150), ("GET /v1/jobs/{id}", ("read", "read_2x"), 500))
COLORS = {"sqlite": "#4c72b0", "postgresql": "#dd8452"}


def plot(data: dict[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for column, (name, phases, target) in enumerate(PANELS):
        rate_ax, latency_ax = axes[0][column], axes[1][column]
        width = 0.8 / len(data["runs"])
        for i, (kind, run) in enumerate(data["runs"].items()):
            stats = [run["phases"][phase]["requests"][name] for phase in phases]
            xs = [x + i * width for x in range(len(phases))]
            bars = rate_ax.bar(xs, [s["per_s"] for s in stats], width, label=kind, color=COLORS.get(kind))
            rate_ax.bar_label(bars, fmt="%.0f", fontsize=8)
            latency_ax.bar(xs, [s["p99_ms"] for s in stats], width, color=COLORS.get(kind), alpha=0.45)
            latency_ax.bar(xs, [s["p50_ms"] for s in stats], width, color=COLORS.get(kind), label=f"{kind} p50")
            for x, s in zip(xs, stats, strict=True):
                latency_ax.text(x, s["p99_ms"], f"p99 {s['p99_ms']:.0f}", ha="center", va="bottom", fontsize=7)
        ticks = [x + 0.4 - width / 2 for x in range(len(phases))]
        labels = ["closed loop (capacity)", "2x capacity offered"]
        for ax in (rate_ax, latency_ax):
            ax.set_xticks(ticks, labels)
        rate_ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target}/s (PostgreSQL)")
        latency_ax.axhline(100, color="gray", linestyle="--", linewidth=1, label="target p99 100 ms")
        rate_ax.set_title(f"{name}: answered per second")
        latency_ax.set_title(f"{name}: p50 (solid) and p99 (light), ms")
        rate_ax.legend(fontsize=8)
        latency_ax.legend(fontsize=8)
    fig.suptitle(f"vlmq HTTP API under locust, {data['machine']['cpus']} shared cores, {data['when']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    source = Path(sys.argv[1])
    plot(json.loads(source.read_text()), source.with_suffix(".png"))
