"""The fused nf4 kernel against bitsandbytes on GLM-4.6V-Flash's text-layer shapes (CUDA).

For each linear of a text layer (q, k, v, o, gate-and-up, down) and each decode batch size, the
time of bitsandbytes' `Linear4bit` (dequantize to bf16, then a dense product; its own 4-bit
kernel for one row) against `nf4_linear`, and how far the two outputs are apart relative to
the output's size. The sum over one layer times 40 layers is what the linears cost a step.

GPU:  OUT=/some/dir python3 bench/gpu_nf4_kernel_bench.py   (writes $OUT/gpu_nf4_kernel_bench.json)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import bitsandbytes as bnb
import torch
from gpu_engine_bench import Recorder  # sibling script in bench/
from triton.testing import do_bench

from worker.inference.batching.nf4_matmul import Tiling, nf4_linear, nf4_weight

# (name, in_features, out_features, bias) of one GLM-4.6V-Flash text layer
LAYER = [
    ("q_proj", 4096, 4096, True),
    ("k_proj", 4096, 256, True),
    ("v_proj", 4096, 256, True),
    ("o_proj", 4096, 4096, False),
    ("gate_up_proj", 4096, 27392, False),
    ("down_proj", 13696, 4096, False),
]
LAYERS = 40


def linear(in_features: int, out_features: int, bias: bool) -> torch.nn.Module:
    layer = bnb.nn.Linear4bit(
        in_features, out_features, bias=bias, compute_dtype=torch.bfloat16, compress_statistics=True, quant_type="nf4"
    )
    torch.nn.init.normal_(layer.weight, std=0.02)
    if bias:
        torch.nn.init.normal_(layer.bias, std=0.02)
    return layer.to(torch.bfloat16).cuda()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1,16,32,64,128")
    parser.add_argument("--sweep", default="", help="row counts to time every tiling at (e.g. 64,128)")
    args = parser.parse_args()
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    rec = Recorder(out)
    rec.path = out / "gpu_nf4_kernel_bench.json" if out else None
    rec.put("device", torch.cuda.get_device_name())
    processors = torch.cuda.get_device_properties(0).multi_processor_count
    modules = {name: linear(k, n, bias) for name, k, n, bias in LAYER}
    results: dict[str, dict[str, dict[str, float]]] = {}
    step: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for rows in map(int, args.rows.split(",")):
            per_rows: dict[str, dict[str, float]] = {}
            for name, module in modules.items():
                weight = nf4_weight(module)
                assert weight is not None
                x = torch.randn(rows, 1, module.in_features, dtype=torch.bfloat16, device="cuda")
                expected = module(x).float()
                got = nf4_linear(x, weight, processors).float()
                per_rows[name] = {
                    "bnb_ms": round(do_bench(lambda m=module, x=x: m(x)), 4),
                    "fused_ms": round(do_bench(lambda w=weight, x=x: nf4_linear(x, w, processors)), 4),
                    "max_rel_diff": round(float((got - expected).abs().max() / expected.abs().max()), 5),
                }
            results[str(rows)] = per_rows
            step[str(rows)] = {
                key: round(LAYERS * sum(v[f"{key}_ms"] for v in per_rows.values()), 2) for key in ("bnb", "fused")
            }
            rec.put("linears", results)
            rec.put("linears_per_step_ms", step)
        if args.sweep:
            rec.put("tilings", sweep(modules, processors, [int(r) for r in args.sweep.split(",")]))


def sweep(modules: dict[str, torch.nn.Module], processors: int, row_counts: list[int]) -> list[dict[str, object]]:
    """Milliseconds of one layer's linears (all six) under each tiling, fastest first."""
    tilings = [
        Tiling(block_n, max_block_m, warps, stages)
        for block_n in (32, 64, 128)
        for max_block_m in (64, 128)
        for warps in (4, 8)
        for stages in (2, 4)
    ]
    found = []
    for tiling in tilings:
        entry: dict[str, object] = {"tiling": vars(tiling)}
        for rows in row_counts:
            total = 0.0
            for module in modules.values():
                weight = nf4_weight(module)
                x = torch.randn(rows, 1, module.in_features, dtype=torch.bfloat16, device="cuda")
                total += do_bench(lambda w=weight, x=x, t=tiling: nf4_linear(x, w, processors, t))
            entry[f"layer_ms_{rows}"] = round(total, 4)
        found.append(entry)
        print(entry, flush=True)
    return sorted(found, key=lambda e: e[f"layer_ms_{row_counts[-1]}"])


if __name__ == "__main__":
    main()
