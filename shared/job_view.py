"""The public JSON shape of a job, shared by the API, pages and webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.models import Job

PLACEHOLDER_MODEL_NAME = "vlmq/tiny-random-glm4v"
PLACEHOLDER_WARNING = (
    "this job ran on vlmq's tiny random-weight model (no model is configured): "
    "its output is noise; set VLMQ_MODEL to a real checkpoint"
)


def iso_utc(value: datetime | None) -> str | None:
    """RFC 3339 with a `Z`, as every timestamp in the API is written."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def job_metrics(job: Job) -> dict[str, float | None]:
    """Seconds the job waited for a worker and spent in the model (None until known)."""
    return {
        "queue_s": _seconds_between(job.created_at, job.started_at),
        "inference_s": round(job.inference_s, 3) if job.inference_s is not None else None,
    }


def job_to_dict(job: Job, base_url: str) -> dict[str, Any]:
    """Render a job; `base_url` (no trailing slash) makes the links absolute."""
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "task": job.task,
        "name": job.source_name,
        "prompt": job.prompt,
        "params": job.params,
        "model": job.model,
        "result": job.result,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "attempts": job.attempts,
        "batch_id": job.batch_id,
        "metadata": job.meta,
        "webhook": job.webhook_url,
        "webhook_events": job.webhook_events,
        "created_at": iso_utc(job.created_at),
        "started_at": iso_utc(job.started_at),
        "completed_at": iso_utc(job.completed_at),
        "progress": _progress(job),
        "metrics": job_metrics(job),
        "urls": {
            "self": f"{base_url}/v1/jobs/{job.id}",
            "cancel": f"{base_url}/v1/jobs/{job.id}/cancel",
            "page": f"{base_url}/jobs/{job.id}",
            "image": f"{base_url}/v1/jobs/{job.id}/image",
        },
    }
    if job.model == PLACEHOLDER_MODEL_NAME:
        body["warnings"] = [PLACEHOLDER_WARNING]
    return body


def _progress(job: Job) -> dict[str, int] | None:
    if job.progress_tokens is None or not job.progress_total:
        return None
    return {"tokens": job.progress_tokens, "max_tokens": job.progress_total}
