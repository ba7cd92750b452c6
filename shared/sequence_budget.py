"""Whether a job's answer fits a worker's sequence, estimated at submit from the photo.

A GPU worker holds each job in one sequence of `VLMQ_GPU_MAX_SEQ_TOKENS` positions, prompt
and answer together, and fails a job whose prompt plus `max_new_tokens` pass it
(`input_too_long`). The web has no tokenizer, but the photo is most of a prompt and its
cost follows from its size: the worker caps the longest side at `VLMQ_IMAGE_MAX_SIDE`, and
the GLM and Qwen2-VL vision towers spend one token per 28 x 28 pixels (14-pixel patches
merged 2 x 2), at least 112 x 112 pixels' worth. Rounded down, that is a lower bound on the
prompt (its text adds more), so a job refused here could never have run; one that passes
may still fail in the worker by its text.
"""

from __future__ import annotations

from shared.settings import Settings

TOKEN_SIDE_PX = 28
MIN_IMAGE_TOKENS = (112 // TOKEN_SIDE_PX) ** 2


def image_tokens(width: int, height: int, max_side: int) -> int:
    """Fewest prompt tokens the photo takes once the worker has capped it at `max_side`."""
    scale = min(1.0, max_side / max(width, height))
    columns, rows = int(width * scale) // TOKEN_SIDE_PX, int(height * scale) // TOKEN_SIDE_PX
    return max(MIN_IMAGE_TOKENS, columns * rows)


def sequence_shortfall(budget: int, width: int, height: int, settings: Settings) -> str | None:
    """Why `budget` new tokens cannot fit beside this photo's prompt; None when they may."""
    prompt = image_tokens(width, height, settings.image_max_side)
    limit = settings.gpu_max_seq_tokens - prompt
    if budget <= limit:
        return None
    return (
        f"max_new_tokens is {budget}, but a worker's sequence holds {settings.gpu_max_seq_tokens} tokens "
        f"(VLMQ_GPU_MAX_SEQ_TOKENS), prompt included, and this {width}x{height} photo alone takes at least "
        f"{prompt}: ask for at most {limit} (less for a long prompt)"
    )
