"""`vlmq webhooks secret` and `vlmq webhooks endpoint`: a tenant's signing secret and default endpoint."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from shared.audit import CLI_ACTOR
from shared.clock import utcnow
from shared.db import make_engine, make_session_factory
from shared.settings import Settings
from shared.ssrf import AllowList, check_webhook_url
from shared.webhooks import tenant_settings
from shared.webhooks.tenant_secrets import current_secret


def _sessions(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.sqlalchemy_url))


def tenant_secret(settings: Settings, tenant_id: str, rotate_it: bool = False) -> str:
    """The tenant's current `whsec_` secret (made on first use), or a fresh one after a rotation."""
    with _sessions(settings).begin() as session:
        if rotate_it:
            return tenant_settings.rotate_secret(session, settings, CLI_ACTOR, tenant_id, utcnow())
        return current_secret(session, settings, tenant_id, utcnow())


def set_endpoint(settings: Settings, tenant_id: str, url: str | None) -> None:
    """Set (or with None clear) where the tenant's jobs without their own `webhook` report."""
    if url is not None:
        check_webhook_url(url, AllowList.parse(settings.webhook_allow_hosts))
    with _sessions(settings).begin() as session:
        tenant_settings.set_endpoint(session, CLI_ACTOR, tenant_id, url, utcnow())
