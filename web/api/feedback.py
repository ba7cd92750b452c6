"""`/v1/jobs/{id}/feedback`: a person scores a job's output and corrects its fields."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from shared.clock import utcnow
from shared.feedback import FeedbackCreate, feedback_to_dict, feedback_view
from shared.ids import new_id
from shared.job_view import render
from shared.models import Feedback
from shared.states import JobStatus
from web.api.job_records import load_job
from web.api.listing import FeedbackList
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError

bp = Blueprint("feedback_api", __name__)


@bp.post("/v1/jobs/<job_id>/feedback")
def add_feedback(job_id: str) -> tuple[Response, int]:
    """Record feedback on a succeeded job; the newest feedback is the one that counts."""
    state = app_state()
    tenant_id = current_tenant()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("invalid_json", 'send a JSON object: {"score": 1-5, "corrections": {...}, "comment": "..."}')
    spec = FeedbackCreate.model_validate(body)
    with state.sessions.begin() as session:
        job = load_job(session, tenant_id, job_id)
        if job.status != JobStatus.SUCCEEDED:
            raise ApiError("job_not_succeeded", f"job {job_id} is {job.status}; feedback is for succeeded jobs", 409)
        feedback = Feedback(
            id=new_id("fb"),
            tenant_id=tenant_id,
            job_id=job_id,
            score=spec.score,
            corrections=spec.corrections,
            comment=spec.comment,
            created_at=utcnow(),
        )
        session.add(feedback)
        session.flush()
        return jsonify(feedback_to_dict(feedback)), 201


@bp.get("/v1/jobs/<job_id>/feedback")
def list_feedback(job_id: str) -> Response:
    """Every feedback on the job, newest first."""
    tenant_id = current_tenant()
    with app_state().sessions() as session:
        load_job(session, tenant_id, job_id)
        rows = session.scalars(select(Feedback).where(Feedback.job_id == job_id).order_by(Feedback.id.desc()))
        return jsonify(render(FeedbackList(data=[feedback_view(feedback) for feedback in rows])))
