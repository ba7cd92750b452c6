"""Another batch API answered at `/v1/batches` next to vlmq's own: OpenAI's Batch API (`web/openai/batches.py`).

`create_app` registers it, so `web/api/` routes requests to it without importing `web/openai/`, which builds on
`web/api/` (a test keeps the dependency one way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app

_EXTENSION = "vlmq.batch_variant"


@dataclass(frozen=True)
class BatchVariant:
    """What `/v1/batches` needs of another batch API: which requests and batch ids are its own, and its answers."""

    claims_request: Callable[[], bool]
    claims_id: Callable[[str], bool]
    create: Callable[[str], Response]
    get: Callable[[str, str], Response]
    cancel: Callable[[str, str], Response]


def register_batch_variant(app: Flask, variant: BatchVariant) -> None:
    app.extensions[_EXTENSION] = variant


def variant_for_request() -> BatchVariant | None:
    """The registered variant when it claims the current `POST /v1/batches` request."""
    variant: BatchVariant | None = current_app.extensions.get(_EXTENSION)
    return variant if variant is not None and variant.claims_request() else None


def variant_for_id(batch_id: str) -> BatchVariant | None:
    """The registered variant when `batch_id` is one of its batches."""
    variant: BatchVariant | None = current_app.extensions.get(_EXTENSION)
    return variant if variant is not None and variant.claims_id(batch_id) else None
