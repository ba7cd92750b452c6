"""The fused nf4 kernel against bitsandbytes' own dequantization, on CPU under Triton's interpreter.

The kernel's arithmetic (unpacking, the nf4 table, the double-quantized absmax, split K) is
checked here; that it compiles and matches bitsandbytes on real shapes is `test_gpu.py`'s.
The interpreter must be on before Triton is first imported (bitsandbytes imports it), so
each check runs in a fresh Python started on this file with it on. The interpreter rounds
float32 to bf16 by truncation, so results are compared within a few bf16 steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch
from torch import nn

from worker.inference.batching.nf4_matmul import nf4_linear, nf4_weight, splits_for

ROOT = Path(__file__).resolve().parents[2]


def interpreted(check: str) -> None:
    """Run `check` (a function of this file) in a new Python with Triton's interpreter on."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, check], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{check} passed" in done.stdout


@pytest.mark.parametrize("check", ["dequantization", "split_k", "not_applicable"])
def test_nf4_kernel(check: str) -> None:
    interpreted(check)


def quantized(in_features: int, out_features: int, nested: bool, bias: bool) -> nn.Module:
    torch.manual_seed(in_features + out_features + nested)
    layer = bnb.nn.Linear4bit(
        in_features, out_features, bias=bias, compute_dtype=torch.bfloat16, compress_statistics=nested, quant_type="nf4"
    )
    if bias:
        layer.bias.data.normal_(0, 0.5)
    return layer.to(torch.bfloat16).to("cpu")


def reference(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`x @ W.T + b` in float32, W as bitsandbytes dequantizes it."""
    weight = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
    out = x.float() @ weight.T
    return out + layer.bias.float() if layer.bias is not None else out


def dequantization() -> None:
    for nested, bias in [(True, True), (True, False), (False, True)]:
        layer = quantized(256, 192, nested, bias)
        weight = nf4_weight(layer)
        assert weight is not None and weight.nested is nested
        x = torch.randn(5, 1, 256, dtype=torch.bfloat16)
        out = nf4_linear(x, weight, processors=1)
        assert out.shape == (5, 1, 192) and out.dtype == torch.bfloat16
        expected = reference(layer, x.view(5, 256)).view(5, 1, 192)
        assert torch.allclose(out.float(), expected, rtol=2e-2, atol=2e-2), (out.float() - expected).abs().max()
        assert not torch.allclose(out.float(), expected.roll(1, dims=-1), rtol=2e-2, atol=2e-2)


def split_k() -> None:
    """Few column tiles on many processors: K is split into parts whose sums are added in order."""
    layer = quantized(1024, 64, nested=True, bias=False)
    weight = nf4_weight(layer)
    assert splits_for(tiles=1, k_iters=1024 // 64, processors=132) == 4
    x = torch.randn(3, 1024, dtype=torch.bfloat16)
    expected = reference(layer, x)
    for processors in (1, 132):
        out = nf4_linear(x, weight, processors=processors).float()
        assert torch.allclose(out, expected, rtol=2e-2, atol=5e-2), (processors, (out - expected).abs().max())


def not_applicable() -> None:
    assert nf4_weight(nn.Linear(256, 64)) is None  # not quantized
    assert nf4_weight(quantized(96, 64, nested=True, bias=False)) is None  # K not a whole number of blocks


if __name__ == "__main__":
    {"dequantization": dequantization, "split_k": split_k, "not_applicable": not_applicable}[sys.argv[1]]()
    print(f"{sys.argv[1]} passed")
