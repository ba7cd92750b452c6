"""Creating, revoking and rotating API keys, each with its audit row in the same transaction.

The one path for `vlmq keys ...` and the admin API, so both leave the same trail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from shared.audit import AuditAction, record
from shared.auth import IssuedKey, issue_api_key, revoke_api_key, rotate_api_key
from shared.job_view import iso_utc
from shared.models import ApiKey


def create_key(
    session: Session,
    actor: str,
    tenant_id: str,
    now: datetime,
    tenant_name: str | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    issued = issue_api_key(session, tenant_id, now, tenant_name, expires_at)
    detail = {"prefix": issued.row.prefix, "expires_at": iso_utc(expires_at)}
    record(session, tenant_id, actor, AuditAction.KEY_CREATED, issued.row.id, now, detail)
    return issued


def revoke_key(session: Session, actor: str, key_id: str, now: datetime) -> ApiKey:
    row = revoke_api_key(session, key_id, now)
    record(session, row.tenant_id, actor, AuditAction.KEY_REVOKED, key_id, now, {"prefix": row.prefix})
    return row


def rotate_key(
    session: Session, actor: str, key_id: str, now: datetime, grace_s: float = 0, expires_at: datetime | None = None
) -> IssuedKey:
    issued = rotate_api_key(session, key_id, now, grace_s, expires_at)
    detail = {"new_key_id": issued.row.id, "grace_s": grace_s, "expires_at": iso_utc(expires_at)}
    record(session, issued.row.tenant_id, actor, AuditAction.KEY_ROTATED, key_id, now, detail)
    return issued
