"""The public JSON shape of a batch, shared by the API, the batch page and `batch.completed`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.job_view import iso_utc
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


def batch_to_dict(batch: Batch, counts: dict[str, int], base_url: str) -> dict[str, Any]:
    """Render a batch; `base_url` (no trailing slash) makes the links absolute."""
    finished = sum(counts[status.value] for status in TERMINAL_STATUSES)
    return {
        "id": batch.id,
        "status": batch_status(batch),
        "task": batch.task,
        "total": batch.total,
        "counts": counts,
        "progress": round(finished / batch.total, 4),
        "metadata": batch.meta,
        "webhook": batch.webhook_url,
        "created_at": iso_utc(batch.created_at),
        "completed_at": iso_utc(batch.completed_at),
        "canceled_at": iso_utc(batch.canceled_at),
        "urls": {
            "self": f"{base_url}/v1/batches/{batch.id}",
            "results": f"{base_url}/v1/batches/{batch.id}/results",
            "cancel": f"{base_url}/v1/batches/{batch.id}/cancel",
            "page": f"{base_url}/batches/{batch.id}",
        },
    }


def render_batch(session: Session, batch: Batch, base_url: str) -> dict[str, Any]:
    """One batch with its current counts."""
    return batch_to_dict(batch, batch_counts(session, [batch.id])[batch.id], base_url)
