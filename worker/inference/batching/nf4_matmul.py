"""A fused 4-bit (nf4) matrix product for the decode step's linears (CUDA, Triton).

For an input of more than one row, bitsandbytes first writes the whole weight out in
16 bit and then runs a dense product: for a decode step (one token for each of up to
a few hundred rows) those passes over a 16-bit copy of every weight cost more than
the arithmetic. This kernel reads the packed 4-bit weight once, turns each tile into
bf16 in registers (the nf4 table value times its block's absmax, the absmax itself
double-quantized exactly as bitsandbytes stores it) and multiplies on the tensor
cores. Prefill keeps bitsandbytes' path: over thousands of rows the product dominates.
When a weight's columns give too few tiles to fill the GPU, the K dimension is split
and the partial sums added in a fixed order, so results do not vary run to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl


@dataclass(frozen=True)
class Tiling:
    """Launch shape: output columns per program, most rows per program, warps and pipeline stages."""

    block_n: int = 64
    max_block_m: int = 128
    num_warps: int = 4
    num_stages: int = 3


DEFAULT_TILING = Tiling()


@triton.jit
def _nf4_matmul_kernel(
    x_ptr,
    packed_ptr,
    absmax_ptr,
    code2_ptr,
    absmax2_ptr,
    lut_ptr,
    out_ptr,
    M,
    N,
    K,
    offset,
    iters_per_split,
    stride_xm,
    NESTED: tl.constexpr,
    QBLOCK: tl.constexpr,
    QBLOCK2: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    # One K step is one quantization block (QBLOCK weights of a row share one absmax), so the
    # scale is one value per column; the block's even and odd weights (the high and low nibbles
    # of its bytes) are multiplied with the even and odd columns of x in two products.
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_s = tl.program_id(2)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    col_ok = cols < N
    pairs = tl.arange(0, QBLOCK // 2)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    k_start = pid_s * iters_per_split * QBLOCK
    k_end = tl.minimum(K, k_start + iters_per_split * QBLOCK)
    for k0 in range(k_start, k_end, QBLOCK):
        block = cols * (K // QBLOCK) + k0 // QBLOCK
        if NESTED:
            code = tl.load(absmax_ptr + block, mask=col_ok, other=0).to(tl.int32)
            scale = tl.load(code2_ptr + code) * tl.load(absmax2_ptr + block // QBLOCK2, mask=col_ok) + offset
        else:
            scale = tl.load(absmax_ptr + block, mask=col_ok, other=0.0)
        packed = tl.load(packed_ptr + cols[:, None] * (K // 2) + (k0 // 2 + pairs)[None, :], mask=col_ok[:, None])
        even = (tl.load(lut_ptr + (packed >> 4).to(tl.int32)) * scale[:, None]).to(tl.bfloat16)
        odd = (tl.load(lut_ptr + (packed & 15).to(tl.int32)) * scale[:, None]).to(tl.bfloat16)
        x_row = x_ptr + rows[:, None] * stride_xm + (k0 + 2 * pairs)[None, :]
        x_even = tl.load(x_row, mask=row_ok[:, None], other=0.0)
        x_odd = tl.load(x_row + 1, mask=row_ok[:, None], other=0.0)
        if DOT_FP32:  # Triton's CPU interpreter multiplies bf16 bit patterns as integers
            acc = tl.dot(x_even.to(tl.float32), tl.trans(even.to(tl.float32)), acc, input_precision="ieee")
            acc = tl.dot(x_odd.to(tl.float32), tl.trans(odd.to(tl.float32)), acc, input_precision="ieee")
        else:
            acc = tl.dot(x_even, tl.trans(even), acc)
            acc = tl.dot(x_odd, tl.trans(odd), acc)
    out = out_ptr + pid_s * M * N + rows[:, None] * N + cols[None, :]
    tl.store(out, acc, mask=row_ok[:, None] & col_ok[None, :])


@dataclass(frozen=True)
class Nf4Weight:
    """One bitsandbytes nf4 linear's packed weight and quantization state, as the kernel reads them."""

    packed: Any
    absmax: Any
    code2: Any
    absmax2: Any
    offset: float
    lut: Any
    out_features: int
    in_features: int
    blocksize: int
    blocksize2: int
    bias: Any

    @property
    def nested(self) -> bool:
        return self.code2 is not None


def nf4_weight(module: Any) -> Nf4Weight | None:
    """The kernel's view of `module`, or None where it does not apply (not nf4, or a shape it does not tile)."""
    import torch

    weight = getattr(module, "weight", None)
    state = getattr(weight, "quant_state", None)
    if state is None or state.quant_type != "nf4" or len(state.shape) != 2:
        return None
    out_features, in_features = (int(size) for size in state.shape)
    if in_features % state.blocksize or state.blocksize < 32:  # a K step is one block, each half a product
        return None
    nested = state.state2 is not None
    return Nf4Weight(
        packed=weight.data.view(-1),
        absmax=state.absmax,
        code2=state.state2.code.float() if nested else None,
        absmax2=state.state2.absmax.float() if nested else None,
        offset=float(state.offset) if nested else 0.0,
        lut=state.code.to(torch.float32),
        out_features=out_features,
        in_features=in_features,
        blocksize=int(state.blocksize),
        blocksize2=int(state.state2.blocksize) if nested else 1,
        bias=module.bias,
    )


def splits_for(tiles: int, k_iters: int, processors: int) -> int:
    """How many parts to split K into so that the launch covers the GPU about twice over."""
    wanted = -(-2 * processors // tiles)
    return max(1, min(wanted, k_iters // 4))


def nf4_linear(x: Any, weight: Nf4Weight, processors: int, tiling: Tiling = DEFAULT_TILING) -> Any:
    """`x @ W.T + bias` for `x` of shape `(..., in_features)` in bf16, W the dequantized nf4 weight."""
    import torch

    flat = x.reshape(-1, weight.in_features)
    if flat.stride(-1) != 1:
        flat = flat.contiguous()
    rows, cols = flat.shape[0], weight.out_features
    block_m = min(tiling.max_block_m, max(16, triton.next_power_of_2(rows)))
    tiles = triton.cdiv(cols, tiling.block_n) * triton.cdiv(rows, block_m)
    k_iters = weight.in_features // weight.blocksize
    splits = splits_for(tiles, k_iters, processors)
    per_split = triton.cdiv(k_iters, splits)
    splits = triton.cdiv(k_iters, per_split)
    partial = torch.empty((splits, rows, cols), dtype=torch.float32, device=flat.device)
    grid = (triton.cdiv(cols, tiling.block_n), triton.cdiv(rows, block_m), splits)
    _nf4_matmul_kernel[grid](
        flat,
        weight.packed,
        weight.absmax,
        weight.code2 if weight.nested else weight.absmax,
        weight.absmax2 if weight.nested else weight.absmax,
        weight.lut,
        partial,
        rows,
        cols,
        weight.in_features,
        weight.offset,
        per_split,
        flat.stride(0),
        NESTED=weight.nested,
        QBLOCK=weight.blocksize,
        QBLOCK2=weight.blocksize2,
        BLOCK_M=block_m,
        BLOCK_N=tiling.block_n,
        DOT_FP32=triton.knobs.runtime.interpret,
        num_warps=tiling.num_warps,
        num_stages=tiling.num_stages,
    )
    out = partial[0] if splits == 1 else partial.sum(0)
    if weight.bias is not None:
        out = out + weight.bias.float()
    return out.to(x.dtype).view(*x.shape[:-1], cols)
