"""Audit rows for what a request did, in the request's own transaction, as its tenant and key."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.audit import AuditAction, record
from shared.clock import utcnow
from web.auth import current_actor, current_tenant


def record_request_action(
    session: Session, action: AuditAction, target_id: str, detail: dict[str, Any] | None = None
) -> None:
    record(session, current_tenant(), current_actor(), action, target_id, utcnow(), detail)
