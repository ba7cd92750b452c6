"""The audit log: who did what to which object, and when.

Actions call `record` with the session of their own transaction, so an action and its
audit row commit (or roll back) together. Rows are kept `VLMQ_AUDIT_RETENTION_S`
(`shared.retention` removes older ones on every sweep).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from shared.ids import new_id
from shared.job_view import Timestamp, iso_utc
from shared.models import AuditEvent

ADMIN_ACTOR = "admin"
CLI_ACTOR = "cli"
ANONYMOUS_ACTOR = "anonymous"  # auth off: every request acts for the default tenant


class AuditAction(StrEnum):
    JOB_SUBMITTED = "job.submitted"
    JOB_CANCELED = "job.canceled"
    JOB_DELETED = "job.deleted"
    BATCH_SUBMITTED = "batch.submitted"
    BATCH_CANCELED = "batch.canceled"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    KEY_ROTATED = "key.rotated"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
    WEBHOOK_ENDPOINT_CHANGED = "webhook.endpoint_changed"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"


def record(
    session: Session,
    tenant_id: str,
    actor: str,
    action: AuditAction,
    target_id: str | None,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the caller's transaction."""
    session.add(
        AuditEvent(
            id=new_id("aud"),
            tenant_id=tenant_id,
            actor=actor,
            action=action.value,
            target_id=target_id,
            detail=detail,
            created_at=now,
        )
    )


def audit_query(
    tenant_id: str, actions: list[AuditAction], since: datetime | None, until: datetime | None
) -> Select[tuple[AuditEvent]]:
    """A tenant's audit rows: any of `actions` (all when empty), written `since` <= t < `until` when given."""
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if actions:
        query = query.where(AuditEvent.action.in_([action.value for action in actions]))
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    return query


class AuditEventView(BaseModel):
    id: str
    tenant_id: str
    actor: str
    action: str
    target_id: str | None
    detail: dict[str, Any] | None
    created_at: Timestamp


def audit_view(event: AuditEvent) -> AuditEventView:
    return AuditEventView(
        id=event.id,
        tenant_id=event.tenant_id,
        actor=event.actor,
        action=event.action,
        target_id=event.target_id,
        detail=event.detail,
        created_at=iso_utc(event.created_at),
    )
