"""Changing a tenant's default webhook endpoint or rotating its signing secret, with the audit row.

Shared by `vlmq webhooks endpoint|secret --rotate` and `/v1/webhooks/default`; callers check
a new URL against the SSRF rules first (each reports an unsafe URL its own way).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.audit import AuditAction, record
from shared.models import Tenant
from shared.settings import Settings
from shared.webhooks.tenant_secrets import rotate


def set_endpoint(session: Session, actor: str, tenant_id: str, url: str | None, now: datetime) -> None:
    """Set (or with None clear) where the tenant's jobs without their own `webhook` report."""
    moved = session.execute(update(Tenant).where(Tenant.id == tenant_id).values(webhook_url=url))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise LookupError(f"no tenant {tenant_id!r}")
    record(session, tenant_id, actor, AuditAction.WEBHOOK_ENDPOINT_CHANGED, tenant_id, now, {"url": url})


def rotate_secret(session: Session, settings: Settings, actor: str, tenant_id: str, now: datetime) -> str:
    """A fresh signing secret; the old one keeps signing for `webhook_secret_rotation_s`."""
    secret = rotate(session, settings, tenant_id, now)
    detail = {"previous_valid_s": settings.webhook_secret_rotation_s}
    record(session, tenant_id, actor, AuditAction.WEBHOOK_SECRET_ROTATED, tenant_id, now, detail)
    return secret
