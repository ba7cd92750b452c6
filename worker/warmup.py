"""One throwaway generation right after the model loads.

The first request a fresh process serves pays for CUDA and cuBLAS handles,
bitsandbytes kernels and allocator growth: 15-20 s instead of ~7.6 s for a
describe job on an H100 (bench/results/gpu_service_bench_h100_nf4.json). Paying
it before the worker announces itself keeps it off a customer's job, and
`/readyz` turns ready only once the worker can really answer.
"""

from __future__ import annotations

import time

from PIL import Image

from worker.inference.types import Engine, GenerationParams, InferenceRequest

WARM_UP_IMAGE_SIZE = (448, 336)


def warm_up(engine: Engine) -> float:
    """Run a 4-token describe on a blank photo; returns the seconds it took."""
    request = InferenceRequest(
        task="describe",
        image=Image.new("RGB", WARM_UP_IMAGE_SIZE, "gray"),
        generation=GenerationParams(max_new_tokens=4, temperature=0.0, top_p=1.0, repetition_penalty=1.0),
    )
    started = time.perf_counter()
    engine.run(request)
    return time.perf_counter() - started
