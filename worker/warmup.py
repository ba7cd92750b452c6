"""One short generation right after the model loads, before the worker announces itself.

A model that loads but cannot generate (a broken checkpoint, a dtype or kernel
mismatch on this GPU) then stops the worker at start-up with the error in its log,
instead of failing every job it would have taken; `/readyz` turns ready only once
a worker has really answered. A larger warm-up did not remove the slower first real
job on a GPU (bench/results/gpu_service_bench_h100_nf4_warmup_*.json), so it is
kept small.
"""

from __future__ import annotations

import time

from PIL import Image

from worker.inference.engine_contract import Engine, GenerationParams, InferenceRequest

WARM_UP_IMAGE_SIZE = (448, 336)
WARM_UP_TOKENS = 4


def warm_up(engine: Engine) -> float:
    """Run a 4-token describe on a blank photo; returns the seconds it took."""
    request = InferenceRequest(
        task="describe",
        image=Image.new("RGB", WARM_UP_IMAGE_SIZE, "gray"),
        generation=GenerationParams(max_new_tokens=WARM_UP_TOKENS, temperature=0.0, top_p=1.0, repetition_penalty=1.0),
    )
    started = time.perf_counter()
    engine.run(request)
    return time.perf_counter() - started
