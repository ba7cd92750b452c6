"""Each tenant's signing secrets: one current, plus retired ones until they expire.

A tenant's secret is made on first need (the first delivery, or `vlmq webhooks
secret`); the default tenant takes `VLMQ_WEBHOOK_SECRET` when it is set. Rotating
(or changing `VLMQ_WEBHOOK_SECRET`) keeps the old secret signing for
`webhook_secret_rotation_s`, so every delivery verifies under the old secret or the
new one while receivers switch over. The sender reads them all through
`worker.webhooks.signing.signing_secrets`.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.auth import DEFAULT_TENANT_ID
from shared.ids import new_id
from shared.models import RetiredWebhookSecret, Tenant
from shared.settings import Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def generate_secret() -> str:
    """A new `whsec_` secret: 24 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def current_secret(session: Session, settings: Settings, tenant_id: str, now: datetime) -> str:
    """The tenant's current secret, creating (or adopting the configured) one when needed."""
    configured = settings.webhook_secret if tenant_id == DEFAULT_TENANT_ID else None
    stored = _stored_secret(session, tenant_id)
    if stored is None:
        # Two processes may race to create it: the conditional update lets one win, both read the winner.
        session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.webhook_secret.is_(None))
            .values(webhook_secret=configured or generate_secret())
        )
        stored = _stored_secret(session, tenant_id)
        if stored is None:
            raise LookupError(f"no tenant {tenant_id!r}")
    if configured is not None and stored != configured:
        _replace(session, settings, tenant_id, stored, configured, now)
        return configured
    return stored


def rotate(session: Session, settings: Settings, tenant_id: str, now: datetime) -> str:
    """Make a fresh secret current; the old one keeps signing for the rotation window."""
    if tenant_id == DEFAULT_TENANT_ID and settings.webhook_secret is not None:
        raise ValueError("the default tenant's secret is VLMQ_WEBHOOK_SECRET: change that setting to rotate it")
    secret = generate_secret()
    _replace(session, settings, tenant_id, current_secret(session, settings, tenant_id, now), secret, now)
    return secret


def _stored_secret(session: Session, tenant_id: str) -> str | None:
    return session.scalar(select(Tenant.webhook_secret).where(Tenant.id == tenant_id))


def _replace(session: Session, settings: Settings, tenant_id: str, old: str, new: str, now: datetime) -> None:
    moved = session.execute(
        update(Tenant).where(Tenant.id == tenant_id, Tenant.webhook_secret == old).values(webhook_secret=new)
    )
    if moved.rowcount == 1:  # type: ignore[attr-defined]
        expires_at = now + timedelta(seconds=settings.webhook_secret_rotation_s)
        session.add(RetiredWebhookSecret(id=new_id("whs"), tenant_id=tenant_id, secret=old, expires_at=expires_at))
        session.flush()
