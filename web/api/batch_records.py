"""Creating and finding batch rows for the API and the pages."""

from __future__ import annotations

from sqlalchemy.orm import Session

from shared.cancel_channel import publish_canceled
from shared.clock import utcnow
from shared.errors import ServiceError
from shared.ids import new_id
from shared.jobs import cancel_batch
from shared.models import Batch
from shared.settings import Settings
from shared.webhooks.enqueue import enqueue_batch_job_deliveries
from web.api.batch_input import BatchSubmission
from web.api.job_records import insert_job
from web.api.owned_rows import owned_or_404
from web.api.quotas import check_queue_quota
from web.app_state import app_state


def load_batch(session: Session, tenant_id: str, batch_id: str) -> Batch:
    """The tenant's batch, or a 404 that does not reveal other tenants' ids."""
    return owned_or_404(session, Batch, batch_id, tenant_id, "batch")


def insert_batch(
    session: Session,
    settings: Settings,
    tenant_id: str,
    submission: BatchSubmission,
    idempotency_key: str | None,
    request_hash: str | None = None,
) -> tuple[Batch, list[str]]:
    """Add the batch row and one queued job per item; returns the batch and its job ids in item order.

    An item whose image is refused raises an `ApiError` naming it; the caller's transaction
    then rolls back, so a refused batch leaves no batch, no job and no image behind.
    """
    shared = submission.shared
    new_bytes = sum(len(item.image or b"") for item in submission.items)
    check_queue_quota(session, settings, tenant_id, len(submission.items), new_bytes)
    batch = Batch(
        id=new_id("bat"),
        tenant_id=tenant_id,
        task=shared.task,
        total=len(submission.items),
        meta=shared.metadata,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        webhook_url=shared.webhook,
        created_at=utcnow(),
    )
    session.add(batch)
    session.flush()  # a reused Idempotency-Key fails here, before any image is checked
    job_ids = []
    for index, item in enumerate(submission.items):
        try:
            job = insert_job(session, settings, tenant_id, item.spec, item.image, batch_id=batch.id)
        except ServiceError as exc:
            raise exc.at(f"items.{index}") from None
        job.batch_index = index
        job_ids.append(job.id)
    return batch, job_ids


def cancel_unfinished_jobs(batch_id: str) -> int:
    """Cancel every queued or running job of the batch in one transaction (`shared.jobs.cancel_batch`),
    push the cancel to the GPU workers, then send the messages of their webhook rows; returns how many
    jobs it canceled."""
    state = app_state()
    with state.sessions.begin() as session:
        canceled = cancel_batch(session, batch_id, utcnow())
    if canceled:
        publish_canceled(state.redis, canceled)
        enqueue_batch_job_deliveries(state.celery, state.sessions, batch_id)
    return len(canceled)
