"""Row factories: insert a tenant's key or a job with sensible defaults, each in its own committed transaction,
for tests that need rows in a given state without going through the API."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from shared.auth import create_api_key
from shared.clock import utcnow
from shared.ids import new_id
from shared.models import Job, StoredImage
from shared.states import JobStatus


def api_key(sessions: sessionmaker[Session], tenant_id: str = "shop-a") -> str:
    """A new key for `tenant_id` (the tenant created if new); returns the clear key."""
    with sessions.begin() as session:
        return create_api_key(session, tenant_id)


def bearer(key: str) -> dict[str, str]:
    """The request headers that present `key`."""
    return {"Authorization": f"Bearer {key}"}


def job_row(
    sessions: sessionmaker[Session],
    status: JobStatus = JobStatus.QUEUED,
    attempts: int = 0,
    tenant_id: str = "default",
) -> str:
    """A `describe` job in `status` on a one-byte stored image (a running one with a fresh heartbeat);
    returns its id."""
    now = utcnow()
    job_id = new_id("job")
    with sessions.begin() as session:
        image = StoredImage(
            id=new_id("img"),
            tenant_id=tenant_id,
            sha256=job_id,
            content_type="image/png",
            width=1,
            height=1,
            size_bytes=1,
            data=b"x",
            created_at=now,
        )
        session.add(image)
        session.flush()
        session.add(
            Job(
                id=job_id,
                tenant_id=tenant_id,
                status=status.value,
                task="describe",
                params={},
                model="m",
                image_id=image.id,
                meta={},
                attempts=attempts,
                created_at=now,
                heartbeat_at=now if status == JobStatus.RUNNING else None,
            )
        )
    return job_id
