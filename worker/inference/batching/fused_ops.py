"""The elementwise work between a step's matrix products, as few kernels as the device allows.

Unfused, the norms, residual adds and the gated activation of one decode step were ~7.8 ms
of a 30 ms step on the H100 (bench/results/gpu_decode_profile_h100_nf4.json): each is a few
tiny memory-bound kernels per layer. On CUDA each function below is compiled (dynamic
shapes, so one compilation serves every batch size) into one kernel that the step's CUDA
graphs then replay; elsewhere they run eagerly, with the same arithmetic as transformers'
modules (RMSNorm in float32, cast back before the weight), so a batched row answers what
`generate()` answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def rms_norm(x: Any, weight: Any, eps: float) -> Any:
    """RMSNorm as GLM's modules compute it."""
    import torch

    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def add_rms_norm(residual: Any, x: Any, weight: Any, next_weight: Any, eps: float) -> tuple[Any, Any]:
    """`residual + norm(x)`, and that sum normed again for the next product (GLM's sandwich norms)."""
    hidden = residual + rms_norm(x, weight, eps)
    return hidden, rms_norm(hidden, next_weight, eps)


def silu_mul(gate_up: Any) -> Any:
    """The gated MLP activation: `up * silu(gate)` over a fused gate/up projection."""
    import torch.nn.functional as F

    gate, up = gate_up.chunk(2, dim=-1)
    return up * F.silu(gate)


@dataclass(frozen=True)
class FusedOps:
    """The functions a family's prefill and decode step call, compiled or not."""

    rms_norm: Callable[..., Any]
    add_rms_norm: Callable[..., Any]
    silu_mul: Callable[..., Any]
    compile: Callable[[Any], Any]
    """Applied to a family's own elementwise functions (its rotary embedding) the same way."""

    @classmethod
    def for_device(cls, device: Any, dtype: Any) -> FusedOps:
        """Compiled on CUDA (Triton kernels, captured with the step); eager elsewhere, or where
        compiling fails on this machine (slower, the same arithmetic)."""
        eager = cls(rms_norm, add_rms_norm, silu_mul, _eager)
        if getattr(device, "type", device) != "cuda":
            return eager
        compiled = cls(_compile(rms_norm), _compile(add_rms_norm), _compile(silu_mul), _compile)
        try:
            compiled.try_once(device, dtype)
        except Exception as exc:  # noqa: BLE001 - Inductor or Triton failing here is any error; eager still works
            log.warning("the fused ops could not be compiled, running them eagerly: %s", exc)
            return eager
        return compiled

    def try_once(self, device: Any, dtype: Any) -> None:
        """Run each function on small inputs (compiling it for this device and dtype)."""
        import torch

        x = torch.ones(2, 64, device=device, dtype=dtype)
        weight = torch.ones(64, device=device, dtype=dtype)
        self.rms_norm(x, weight, 1e-5)
        self.add_rms_norm(x, x, weight, weight, 1e-5)
        self.silu_mul(torch.ones(2, 128, device=device, dtype=dtype))


def _compile(fn: F) -> F:
    import torch

    return torch.compile(fn, dynamic=True, fullgraph=True)


def _eager(fn: F) -> F:
    return fn
