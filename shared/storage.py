"""Image bytes kept in the database, so a worker on any host can read them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.clock import utcnow
from shared.ids import new_id
from shared.images import CheckedImage
from shared.models import StoredImage


def store_image(session: Session, tenant_id: str, image: CheckedImage) -> StoredImage:
    """Store the image once per tenant; identical uploads share one row.

    Two requests storing the same new image at once both miss the lookup; the loser's
    insert fails on the unique key inside a savepoint and it uses the winner's row.
    """
    if (existing := _find(session, tenant_id, image.sha256)) is not None:
        if existing.purged_at is not None:  # retention emptied it; the same photo came again
            existing.data, existing.purged_at = image.data, None
            session.flush()
        return existing
    row = StoredImage(
        id=new_id("img"),
        tenant_id=tenant_id,
        sha256=image.sha256,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size_bytes=len(image.data),
        data=image.data,
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        winner = _find(session, tenant_id, image.sha256)
        if winner is None:
            raise
        return winner
    return row


def _find(session: Session, tenant_id: str, sha256: str) -> StoredImage | None:
    return session.scalar(select(StoredImage).where(StoredImage.tenant_id == tenant_id, StoredImage.sha256 == sha256))


def load_image_bytes(session: Session, image_id: str) -> bytes:
    """The stored bytes of one image."""
    data = session.scalar(select(StoredImage.data).where(StoredImage.id == image_id))
    if not data:
        raise LookupError(f"image {image_id} is missing or was deleted by retention")
    return data
