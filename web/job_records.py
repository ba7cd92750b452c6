"""Creating and finding job rows for the API: shared by every endpoint that makes jobs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.clock import utcnow
from shared.ids import new_id
from shared.images import ImageRejected, check_image
from shared.job_view import PLACEHOLDER_MODEL_NAME
from shared.models import Job
from shared.schemas import JobCreate
from shared.settings import Settings
from shared.states import JobStatus
from shared.storage import store_image
from web.errors import ApiError
from web.state import app_state


def load_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job, or a 404 that does not reveal other tenants' ids."""
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise ApiError(404, "job_not_found", f"no job {job_id!r}")
    return job


def find_by_idempotency_key(tenant_id: str, key: str) -> Job | None:
    """The tenant's job created with this Idempotency-Key, if any."""
    with app_state().sessions() as session:
        return session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))


def insert_job(
    session: Session,
    settings: Settings,
    tenant_id: str,
    spec: JobCreate,
    image: bytes | None,
    idempotency_key: str | None = None,
    batch_id: str | None = None,
    request_hash: str | None = None,
) -> Job:
    """Check the image (or the follow-up's parent), store it and add a queued job row.

    Raises `ApiError` for anything the client got wrong; the caller's transaction then
    rolls back, so a refused request leaves nothing behind. The caller commits, then
    enqueues.
    """
    parent_id = spec.params.parent_job_id
    if parent_id is not None:
        if image is not None:
            raise ApiError(
                400,
                "invalid_request",
                "a follow-up question (params.parent_job_id) reuses its parent's image: omit 'image'",
            )
        parent = load_job(session, tenant_id, parent_id)
        if parent.task != "ask" or parent.status != JobStatus.SUCCEEDED:
            raise ApiError(
                409,
                "invalid_parent_job",
                f"job {parent_id} is not a succeeded 'ask' job (task {parent.task}, status {parent.status})",
            )
        image_id = parent.image_id
    elif image is None:
        raise ApiError(
            400, "missing_image", "an image is required: a multipart file field 'image' or a JSON 'image' data URI"
        )
    else:
        try:
            checked = check_image(image, settings.max_image_bytes, settings.max_image_pixels)
        except ImageRejected as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        image_id = store_image(session, tenant_id, checked).id
    now = utcnow()
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        status=JobStatus.QUEUED.value,
        task=spec.task,
        prompt=spec.prompt,
        params=spec.params.as_stored(),
        model=settings.model or PLACEHOLDER_MODEL_NAME,
        image_id=image_id,
        parent_job_id=parent_id,
        batch_id=batch_id,
        meta=spec.metadata,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        webhook_url=spec.webhook,
        webhook_events=spec.webhook_events,
        attempts=0,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job
