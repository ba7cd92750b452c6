"""`/v1/jobs/{id}/deliveries`: a job's webhook delivery log, and asking for a delivery again."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from shared.audit import AuditAction
from shared.clock import utcnow
from shared.job_view import render
from shared.models import WebhookDelivery
from shared.webhooks.delivery_log import job_deliveries
from shared.webhooks.enqueue import enqueue_delivery
from shared.webhooks.outbox import redeliver
from web.api.audit_records import record_request_action
from web.api.job_records import load_job
from web.api.listing import DeliveryList
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError

bp = Blueprint("deliveries_api", __name__)


@bp.get("/v1/jobs/<job_id>/deliveries")
def list_deliveries(job_id: str) -> Response:
    tenant_id = current_tenant()
    with app_state().sessions() as session:
        load_job(session, tenant_id, job_id)
        return jsonify(render(DeliveryList(data=job_deliveries(session, job_id))))


@bp.post("/v1/jobs/<job_id>/deliveries/redeliver")
def redeliver_job_delivery(job_id: str) -> tuple[Response, int]:
    """Redeliver `delivery_id` from the JSON body, or else the job's latest delivery."""
    state = app_state()
    tenant_id = current_tenant()
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict) or set(body) - {"delivery_id"} or not isinstance(body.get("delivery_id", ""), str):
        raise ApiError("invalid_request", 'the body must be empty or {"delivery_id": "msg_..."}')
    with state.sessions.begin() as session:
        load_job(session, tenant_id, job_id)
        query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
        if delivery_id := body.get("delivery_id"):
            query = query.where(WebhookDelivery.id == delivery_id)
        delivery = session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(1)).first()
        if delivery is None:
            if delivery_id:
                raise ApiError("delivery_not_found", f"job {job_id} has no delivery {delivery_id!r}", 404)
            raise ApiError("no_deliveries", f"job {job_id} has no webhook deliveries to send again", 409)
        redeliver(session, delivery, state.settings.webhook_retry_window_s, utcnow())
        detail = {"delivery_id": delivery.id, "event_type": delivery.event_type}
        record_request_action(session, AuditAction.WEBHOOK_REDELIVERED, job_id, detail)
    enqueue_delivery(state.celery, state.sessions, delivery.id)
    with state.sessions() as session:
        view = next(d for d in job_deliveries(session, job_id) if d.id == delivery.id)
    return jsonify(render(view)), 202
