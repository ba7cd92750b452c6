"""`/v1/webhooks/default`: the calling tenant's default webhook endpoint and signing secret.

The same operations as `vlmq webhooks endpoint` and `vlmq webhooks secret [--rotate]`
(`shared.webhooks.tenant_settings`), for a shop that has only its API key. The secret is
made on first use, as for the command: reading it the first time creates it.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.clock import utcnow
from shared.job_view import render
from shared.models import Tenant
from shared.webhooks import tenant_settings
from shared.webhooks.tenant_secrets import current_secret
from web.api.webhook_input import check_webhook
from web.app_state import app_state
from web.auth import current_actor, current_tenant
from web.errors import ApiError

bp = Blueprint("webhook_settings_api", __name__)


class WebhookEndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(max_length=2048, description="where jobs without their own `webhook` report; null: none")


class WebhookSettings(BaseModel):
    url: str | None
    secret: str = Field(description="whsec_...: verifies the `webhook-signature` header of every delivery")


@bp.get("/v1/webhooks/default")
def get_settings() -> Response:
    tenant_id = current_tenant()
    with app_state().sessions.begin() as session:
        return jsonify(render(_settings(session, tenant_id)))


@bp.put("/v1/webhooks/default")
def set_endpoint() -> Response:
    tenant_id = current_tenant()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("invalid_json", 'send a JSON object: {"url": "https://..."} or {"url": null}')
    spec = WebhookEndpointUpdate.model_validate(body)
    if spec.url is not None:
        check_webhook(spec.url)
    with app_state().sessions.begin() as session:
        tenant_settings.set_endpoint(session, current_actor(), tenant_id, spec.url, utcnow())
        return jsonify(render(_settings(session, tenant_id)))


@bp.post("/v1/webhooks/default/secret/rotate")
def rotate_secret() -> Response:
    """A new secret; the previous one keeps signing too for VLMQ_WEBHOOK_SECRET_ROTATION_S."""
    state = app_state()
    tenant_id = current_tenant()
    with state.sessions.begin() as session:
        try:
            tenant_settings.rotate_secret(session, state.settings, current_actor(), tenant_id, utcnow())
        except ValueError as exc:
            raise ApiError("secret_is_configured", str(exc), 409) from None
        return jsonify(render(_settings(session, tenant_id)))


def _settings(session: Session, tenant_id: str) -> WebhookSettings:
    secret = current_secret(session, app_state().settings, tenant_id, utcnow())
    return WebhookSettings(url=session.scalar(select(Tenant.webhook_url).where(Tenant.id == tenant_id)), secret=secret)
