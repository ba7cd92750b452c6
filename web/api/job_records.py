"""Creating and finding job rows for the API: shared by every endpoint that makes jobs."""

from __future__ import annotations

from sqlalchemy import Select, String, cast, or_
from sqlalchemy.orm import Session

from shared.attributes_budget import job_budget
from shared.clock import utcnow
from shared.ids import new_id
from shared.images import check_image
from shared.log_context import current_request_id
from shared.models import Job, StoredImage
from shared.placeholder_model import PLACEHOLDER_MODEL_NAME
from shared.request_rules import TASKS
from shared.schemas import JobCreate
from shared.sequence_budget import sequence_shortfall
from shared.settings import Settings
from shared.states import JobStatus
from shared.storage import store_image
from web.api.conversation_bounds import check_conversation
from web.api.owned_rows import owned_or_404
from web.errors import ApiError


def _check_answer_fits(spec: JobCreate, width: int, height: int, settings: Settings) -> None:
    """Refuse now a budget the workers' sequences cannot hold beside this photo (it would fail in the worker)."""
    budget = job_budget(spec.task, spec.params.as_stored(), settings)
    if problem := sequence_shortfall(budget, width, height, settings):
        raise ApiError("input_too_long", problem)


def load_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job, or a 404 that does not reveal other tenants' ids."""
    return owned_or_404(session, Job, job_id, tenant_id, "job")


def insert_job(
    session: Session,
    settings: Settings,
    tenant_id: str,
    spec: JobCreate,
    image: bytes | None,
    idempotency_key: str | None = None,
    batch_id: str | None = None,
    interactive: bool = False,
    request_hash: str | None = None,
) -> Job:
    """Check the image (or the follow-up's parent), store it and add a queued job row.

    Raises `ApiError` for anything the client got wrong; the caller's transaction then
    rolls back, so a refused request leaves nothing behind. The caller commits, then
    enqueues (`interactive` jobs, whose caller waits, on the lane GPU workers drain first).
    """
    parent_id = spec.params.parent_job_id
    parent = _parent_job(session, tenant_id, parent_id, image) if parent_id is not None else None
    if spec.task == "ask":
        check_conversation(session, settings, spec, parent)
    if parent is not None:
        image_id = parent.image_id
        if (photo := session.get(StoredImage, image_id)) is not None:
            _check_answer_fits(spec, photo.width, photo.height, settings)
    elif image is None:
        raise ApiError(
            "missing_image", "an image is required: a multipart file field 'image' or a JSON 'image' data URI"
        )
    else:
        checked = check_image(image, settings.max_image_bytes, settings.max_image_pixels)
        _check_answer_fits(spec, checked.width, checked.height, settings)
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
        interactive=interactive,
        meta=spec.metadata,
        source_name=spec.name,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        webhook_url=spec.webhook,
        webhook_events=spec.webhook_events,
        request_id=current_request_id(),
        attempts=0,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job


def _parent_job(session: Session, tenant_id: str, parent_id: str, image: bytes | None) -> Job:
    """The succeeded `ask` job a follow-up question continues."""
    if image is not None:
        raise ApiError(
            "invalid_request",
            "a follow-up question (params.parent_job_id) reuses its parent's image: omit 'image'",
        )
    parent = load_job(session, tenant_id, parent_id)
    if parent.task != "ask" or parent.status != JobStatus.SUCCEEDED:
        raise ApiError(
            "invalid_parent_job",
            f"job {parent_id} is not a succeeded 'ask' job (task {parent.task}, status {parent.status})",
            409,
        )
    image = session.get(StoredImage, parent.image_id)
    if image is None or image.purged_at is not None:
        raise ApiError(
            "image_deleted",
            f"the image of job {parent_id} was deleted after VLMQ_IMAGE_RETENTION_S; ask again with the image",
            409,
        )
    return parent


def insert_retry(session: Session, settings: Settings, job: Job) -> Job:
    """A queued copy of an ended job (same image, task, prompt, params, metadata, name and webhook).

    It is a job of its own, outside any batch: the batch keeps its results as they were.
    """
    retry = Job(
        id=new_id("job"),
        tenant_id=job.tenant_id,
        status=JobStatus.QUEUED.value,
        task=job.task,
        prompt=job.prompt,
        params=job.params,
        model=settings.model or PLACEHOLDER_MODEL_NAME,
        image_id=job.image_id,
        parent_job_id=job.parent_job_id,
        meta=job.meta,
        source_name=job.source_name,
        webhook_url=job.webhook_url,
        webhook_events=job.webhook_events,
        request_id=current_request_id(),
        attempts=0,
        created_at=utcnow(),
    )
    session.add(retry)
    session.flush()
    return retry


def filter_jobs(
    query: Select[tuple[Job]], status: str | None, task: str | None, search: str | None
) -> Select[tuple[Job]]:
    """Narrow a job listing by status, task, and text found in the file name or metadata (a SKU, say)."""
    if status:
        if status not in JobStatus._value2member_map_:
            raise ApiError("invalid_status", f"status must be one of {', '.join(s.value for s in JobStatus)}")
        query = query.where(Job.status == status)
    if task:
        if task not in TASKS:
            raise ApiError("invalid_task", f"task must be one of {', '.join(TASKS)}")
        query = query.where(Job.task == task)
    if search and search.strip():
        pattern = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(Job.source_name.ilike(pattern, escape="\\"), cast(Job.meta, String).ilike(pattern, escape="\\"))
        )
    return query
