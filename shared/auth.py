"""API keys: issued once in clear, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.clock import utcnow
from shared.ids import new_id
from shared.models import ApiKey, Tenant

DEFAULT_TENANT_ID = "default"
KEY_PREFIX = "vlmq_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, tenant_id: str, tenant_name: str | None = None) -> str:
    """Create (if needed) the tenant and a new key for it; returns the clear key."""
    if session.get(Tenant, tenant_id) is None:
        session.add(Tenant(id=tenant_id, name=tenant_name or tenant_id, created_at=utcnow()))
        session.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(id=new_id("key"), tenant_id=tenant_id, key_hash=hash_key(key), prefix=key[:12], created_at=utcnow())
    )
    session.flush()
    return key


def tenant_for_key(session: Session, key: str) -> str | None:
    """The tenant a live key belongs to, or None for an unknown or revoked key."""
    return session.scalar(select(ApiKey.tenant_id).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
