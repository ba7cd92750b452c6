"""Per-tenant quotas on work waiting in the queue: jobs and the bytes of their images.

Counted from the job table (the source of truth every web process shares) inside the
submitting transaction. Two submissions racing may both pass the check, so a tenant can
exceed a quota by at most what its concurrent requests add; the rate limit keeps that small.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import Job, StoredImage
from shared.settings import Settings
from shared.states import JobStatus
from web.errors import ApiError

# How long a client is told to wait: quotas free up as jobs finish, seconds to minutes.
RETRY_AFTER_S = 30
UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def check_queue_quota(session: Session, settings: Settings, tenant_id: str, jobs: int, image_bytes: int) -> None:
    """A 429 when adding `jobs` jobs with `image_bytes` of new images would pass the tenant's quotas."""
    unfinished = (Job.tenant_id == tenant_id, Job.status.in_(UNFINISHED))
    waiting = session.scalar(select(func.count()).select_from(Job).where(*unfinished)) or 0
    if waiting + jobs > settings.max_queued_jobs_per_tenant:
        raise _over_quota(
            "queue_quota_exceeded",
            f"{waiting} of your jobs are waiting or running and this request adds {jobs}; at most "
            f"{settings.max_queued_jobs_per_tenant} may be (VLMQ_MAX_QUEUED_JOBS_PER_TENANT)",
        )
    held = session.scalar(
        select(func.coalesce(func.sum(StoredImage.size_bytes), 0)).where(
            StoredImage.id.in_(select(Job.image_id).where(*unfinished))
        )
    )
    if (held or 0) + image_bytes > settings.max_queued_image_bytes_per_tenant:
        raise _over_quota(
            "image_quota_exceeded",
            f"your waiting and running jobs hold {held} bytes of images and this request adds {image_bytes}; at "
            f"most {settings.max_queued_image_bytes_per_tenant} may be (VLMQ_MAX_QUEUED_IMAGE_BYTES_PER_TENANT)",
        )


def _over_quota(code: str, message: str) -> ApiError:
    return ApiError(code, f"{message}: retry when some have finished", 429, {"Retry-After": str(RETRY_AFTER_S)})
