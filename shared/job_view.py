"""The public JSON shape of a job, shared by the API, pages and webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shared.models import Job
from shared.placeholder_model import PLACEHOLDER_MODEL_NAME
from shared.states import JobStatus

PLACEHOLDER_WARNING = (
    "this job ran on vlmq's tiny random-weight model (no model is configured): "
    "its output is noise; set VLMQ_MODEL to a real checkpoint"
)

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""An RFC 3339 time with a `Z`, as `iso_utc` writes it."""


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


class JobResult(BaseModel):
    """What the model answered; keys a newer worker adds are kept as they are."""

    model_config = ConfigDict(extra="allow")

    text: str
    data: dict[str, Any] | None = None
    usage: dict[str, int] = Field(default_factory=dict, description="prompt_tokens, completion_tokens")
    finish_reason: str | None = Field(None, description="stop or length, as the engine reports it")
    redactions: list[dict[str, Any]] = Field(default_factory=list)


class JobError(BaseModel):
    code: str
    message: str | None


class JobProgress(BaseModel):
    tokens: int
    max_tokens: int


class JobMetrics(BaseModel):
    queue_s: float | None
    inference_s: float | None


class JobUrls(BaseModel):
    self: str
    cancel: str
    page: str
    image: str


class JobView(BaseModel):
    """A job as the API, the pages and webhooks show it (the OpenAPI document uses this model too)."""

    id: str
    status: JobStatus
    task: str
    name: str | None = Field(description="the uploaded file's name, or a batch item's `name`")
    prompt: str | None
    params: dict[str, Any]
    model: str
    result: JobResult | None
    error: JobError | None
    attempts: int
    batch_id: str | None
    metadata: dict[str, Any]
    webhook: str | None
    webhook_events: list[str] | None
    created_at: Timestamp
    started_at: Timestamp | None
    completed_at: Timestamp | None
    progress: JobProgress | None
    metrics: JobMetrics
    urls: JobUrls
    warnings: list[str] | None = Field(None, description="present when the output is not to be trusted")


def render(view: BaseModel) -> dict[str, Any]:
    """A view model as JSON-ready data; optional fields left unset are left out."""
    return view.model_dump(mode="json", exclude_unset=True)


def job_to_dict(job: Job, base_url: str) -> dict[str, Any]:
    """Render a job; `base_url` (no trailing slash) makes the links absolute."""
    return render(job_view(job, base_url))


def job_view(job: Job, base_url: str) -> JobView:
    """The job's view model (see `job_to_dict`)."""
    view = JobView(
        id=job.id,
        status=JobStatus(job.status),
        task=job.task,
        name=job.source_name,
        prompt=job.prompt,
        params=job.params,
        model=job.model,
        result=JobResult.model_validate(job.result) if job.result else None,
        error=JobError(code=job.error_code, message=job.error_message) if job.error_code else None,
        attempts=job.attempts,
        batch_id=job.batch_id,
        metadata=job.meta,
        webhook=job.webhook_url,
        webhook_events=job.webhook_events,
        created_at=iso_utc(job.created_at),
        started_at=iso_utc(job.started_at),
        completed_at=iso_utc(job.completed_at),
        progress=_progress(job),
        metrics=JobMetrics(**job_metrics(job)),
        urls=JobUrls(
            self=f"{base_url}/v1/jobs/{job.id}",
            cancel=f"{base_url}/v1/jobs/{job.id}/cancel",
            page=f"{base_url}/jobs/{job.id}",
            image=f"{base_url}/v1/jobs/{job.id}/image",
        ),
    )
    if job.model == PLACEHOLDER_MODEL_NAME:
        view.warnings = [PLACEHOLDER_WARNING]
    return view


def _progress(job: Job) -> JobProgress | None:
    if job.progress_tokens is None or not job.progress_total:
        return None
    return JobProgress(tokens=job.progress_tokens, max_tokens=job.progress_total)
