"""The public JSON shape of a batch, shared by the API, the batch page and `batch.completed`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.job_view import Timestamp, iso_utc, render
from shared.models import Batch, Job
from shared.states import TERMINAL_STATUSES, JobStatus


def batch_counts(session: Session, batch_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Jobs per status of each batch (every status present, zeros included), in one query."""
    ids = list(batch_ids)
    counts = {batch_id: {status.value: 0 for status in JobStatus} for batch_id in ids}
    if ids:
        rows = session.execute(
            select(Job.batch_id, Job.status, func.count())
            .where(Job.batch_id.in_(ids))
            .group_by(Job.batch_id, Job.status)
        )
        for batch_id, status, count in rows:
            counts[batch_id][status] = count
    return counts


def batch_status(batch: Batch) -> str:
    """`running` until every job ended, then `canceled` if someone canceled the batch, else `completed`.

    `completed_at` is set in the transaction that ended the last job, so it never disagrees with the jobs.
    """
    if batch.completed_at is None:
        return "running"
    return "canceled" if batch.canceled_at is not None else "completed"


class BatchUrls(BaseModel):
    self: str
    results: str
    cancel: str
    page: str


class BatchView(BaseModel):
    """A batch as the API, the page and `batch.completed` show it (the OpenAPI document uses it too)."""

    id: str
    status: Literal["running", "completed", "canceled"]
    task: str
    total: int
    counts: dict[JobStatus, int] = Field(description="jobs per status, every status present")
    progress: float = Field(ge=0, le=1, description="finished jobs / total")
    metadata: dict[str, Any]
    webhook: str | None
    created_at: Timestamp
    completed_at: Timestamp | None
    canceled_at: Timestamp | None
    urls: BatchUrls


def batch_to_dict(batch: Batch, counts: dict[str, int], base_url: str) -> dict[str, Any]:
    """Render a batch; `base_url` (no trailing slash) makes the links absolute."""
    return render(batch_view(batch, counts, base_url))


def batch_view(batch: Batch, counts: dict[str, int], base_url: str) -> BatchView:
    """The batch's view model (see `batch_to_dict`)."""
    finished = sum(counts[status.value] for status in TERMINAL_STATUSES)
    return BatchView(
        id=batch.id,
        status=batch_status(batch),
        task=batch.task,
        total=batch.total,
        counts={JobStatus(status): count for status, count in counts.items()},
        progress=round(finished / batch.total, 4),
        metadata=batch.meta,
        webhook=batch.webhook_url,
        created_at=iso_utc(batch.created_at),
        completed_at=iso_utc(batch.completed_at),
        canceled_at=iso_utc(batch.canceled_at),
        urls=BatchUrls(
            self=f"{base_url}/v1/batches/{batch.id}",
            results=f"{base_url}/v1/batches/{batch.id}/results",
            cancel=f"{base_url}/v1/batches/{batch.id}/cancel",
            page=f"{base_url}/batches/{batch.id}",
        ),
    )


def render_batch(session: Session, batch: Batch, base_url: str) -> dict[str, Any]:
    """One batch with its current counts."""
    return batch_to_dict(batch, batch_counts(session, [batch.id])[batch.id], base_url)
