"""API keys: issued once in clear, stored only as a SHA-256 hash; revoked, expired or rotated.

A key is refused from its `revoked_at` (set to now by a revocation, or to the end of the
grace period by a rotation) and from its `expires_at`. `last_used_at` is written at most
once per `LAST_USED_RESOLUTION`, so a busy key does not turn every request into a write.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.clock import utcnow
from shared.ids import new_id
from shared.models import ApiKey, Tenant

DEFAULT_TENANT_ID = "default"
KEY_PREFIX = "vlmq_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyRefused(Exception):
    """A presented key that does not authenticate; `code` and `message` are for the 401."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KeyNotLive(ValueError):
    """A revocation or rotation of a key that is already revoked (or rotated)."""


@dataclass(frozen=True)
class IssuedKey:
    row: ApiKey
    secret: str  # the clear key: shown once, never stored


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_api_key(
    session: Session, tenant_id: str, now: datetime, tenant_name: str | None = None, expires_at: datetime | None = None
) -> IssuedKey:
    """Create (if needed) the tenant and a new key for it."""
    if session.get(Tenant, tenant_id) is None:
        session.add(Tenant(id=tenant_id, name=tenant_name or tenant_id, created_at=now))
        session.flush()
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=new_id("key"),
        tenant_id=tenant_id,
        key_hash=hash_key(secret),
        prefix=secret[:12],
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return IssuedKey(row, secret)


def create_api_key(session: Session, tenant_id: str, tenant_name: str | None = None) -> str:
    """A new key without expiry for `tenant_id` (created if new); returns the clear key."""
    return issue_api_key(session, tenant_id, utcnow(), tenant_name).secret


def authenticate(session: Session, key: str, now: datetime) -> ApiKey:
    """The live key row for `key`, its last use noted; `KeyRefused` for an unknown, revoked or expired key."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or (row.revoked_at is not None and row.revoked_at <= now):
        raise KeyRefused("invalid_api_key", "the API key is unknown or revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise KeyRefused(
            "api_key_expired",
            f"the API key {row.prefix}... expired at {row.expires_at.isoformat()}; ask for a new one",
        )
    cutoff = now - LAST_USED_RESOLUTION
    if row.last_used_at is None or row.last_used_at <= cutoff:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == row.id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= cutoff))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return row


def list_api_keys(session: Session, tenant_id: str | None = None) -> list[ApiKey]:
    """Every key (of one tenant, when given), oldest first."""
    query = select(ApiKey).order_by(ApiKey.id)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    return list(session.scalars(query))


def revoke_api_key(session: Session, key_id: str, now: datetime) -> ApiKey:
    """Refuse the key from now on (also one still in a rotation's grace period)."""
    row = _live_key(session, key_id, now)
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, or_(ApiKey.revoked_at.is_(None), ApiKey.revoked_at > now))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    return row


def rotate_api_key(
    session: Session, key_id: str, now: datetime, grace_s: float = 0, expires_at: datetime | None = None
) -> IssuedKey:
    """A new key for the same tenant; the old one is refused after `grace_s` seconds (at once with 0)."""
    old = _live_key(session, key_id, now)
    if old.revoked_at is not None:
        raise KeyNotLive(f"key {key_id} was already rotated; it is refused from {old.revoked_at.isoformat()}")
    moved = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now + timedelta(seconds=grace_s))
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise KeyNotLive(f"key {key_id} was rotated or revoked meanwhile")
    session.refresh(old)
    return issue_api_key(session, old.tenant_id, now, expires_at=expires_at)


def _live_key(session: Session, key_id: str, now: datetime) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise LookupError(f"no API key {key_id!r}")
    if row.revoked_at is not None and row.revoked_at <= now:
        raise KeyNotLive(f"key {key_id} is already revoked (since {row.revoked_at.isoformat()})")
    return row
