"""`/v1/jobs`: submit, read, list and cancel jobs."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from shared.audit import AuditAction
from shared.cancel_channel import publish_canceled
from shared.clock import utcnow
from shared.db import drop_deleted_copies
from shared.job_enqueue import enqueue_job
from shared.job_view import job_to_dict, job_view, render
from shared.jobs import cancel
from shared.models import Job
from shared.retention import delete_job
from shared.states import JobStatus
from shared.webhooks.enqueue import enqueue_job_deliveries
from web.api.audit_records import record_request_action
from web.api.idempotency import REPLAYED, IdempotentCreate
from web.api.job_input import read_job_submission
from web.api.job_records import filter_jobs, insert_job, load_job
from web.api.listing import JobPage
from web.api.pagination import PageRequest
from web.api.quotas import check_queue_quota
from web.api.waiting import requested_wait_s, wait_until_finished
from web.api.webhook_input import check_job_webhook
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError
from web.urls import base_url

bp = Blueprint("jobs_api", __name__)


def _job_response(job: Job, status: int, **headers: str) -> tuple[Response, int, dict[str, str]]:
    return jsonify(job_to_dict(job, base_url())), status, headers


@bp.post("/v1/jobs")
def create_job() -> tuple[Response, int, dict[str, str]]:
    state = app_state()
    tenant_id = current_tenant()
    once = IdempotentCreate.of_request(Job, tenant_id)
    if (replay := once.earlier()) is not None:
        return _job_response(replay, 200, **REPLAYED)

    requested_s = requested_wait_s(request.headers.get("Prefer"), state.settings.max_wait_s)
    with state.wait_slots.claim(requested_s) as wait_s:
        return _create_job(once, wait_s)


def _create_job(once: IdempotentCreate[Job], wait_s: float) -> tuple[Response, int, dict[str, str]]:
    """Store and enqueue the job; hold the request up to `wait_s` (0: answer at once)."""
    state = app_state()
    submission = read_job_submission(request, state.settings)
    check_job_webhook(submission.spec, once.tenant_id)

    def insert() -> Job:
        with state.sessions.begin() as session:
            check_queue_quota(session, state.settings, once.tenant_id, 1, len(submission.image or b""))
            job = insert_job(
                session,
                state.settings,
                once.tenant_id,
                submission.spec,
                submission.image,
                once.key,
                request_hash=once.fingerprint,
                interactive=wait_s > 0,
            )
            record_request_action(session, AuditAction.JOB_SUBMITTED, job.id, {"task": job.task})
            return job

    job, replay = once.create(insert)
    if replay is not None:
        return _job_response(replay, 200, **REPLAYED)
    assert job is not None
    enqueue_job(state.celery, state.sessions, job.id, interactive=wait_s > 0)
    headers = {"Location": f"{base_url()}/v1/jobs/{job.id}"}
    if wait_s > 0:
        wait_until_finished(state.sessions, job.id, wait_s)
        headers["Preference-Applied"] = f"wait={wait_s:g}"
    with state.sessions() as session:
        job = session.get(Job, job.id)
    return _job_response(job, 200 if JobStatus(job.status).is_terminal() else 202, **headers)


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id: str) -> tuple[Response, int, dict[str, str]]:
    tenant_id = current_tenant()
    with app_state().sessions() as session:
        return _job_response(load_job(session, tenant_id, job_id), 200)


@bp.get("/v1/jobs")
def list_jobs() -> Response:
    state = app_state()
    tenant_id = current_tenant()
    asked = PageRequest.from_args()
    query = select(Job).where(Job.tenant_id == tenant_id)
    query = filter_jobs(query, request.args.get("status"), request.args.get("task"), request.args.get("q"))
    if (batch_id := request.args.get("batch_id")) is not None:
        query = query.where(Job.batch_id == batch_id)
    with state.sessions() as session:
        page = asked.read(session, query, Job.id)
    listing = JobPage(
        data=[job_view(job, base_url()) for job in page.rows], has_more=page.has_more, next_cursor=page.next_cursor
    )
    return jsonify(render(listing))


@bp.post("/v1/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> tuple[Response, int, dict[str, str]]:
    state = app_state()
    tenant_id = current_tenant()
    with state.sessions.begin() as session:
        job = load_job(session, tenant_id, job_id)
        if not cancel(session, job_id, utcnow()):
            raise ApiError(
                "job_already_finished",
                f"job {job_id} already {job.status}; only queued or running jobs can be canceled",
                409,
            )
        record_request_action(session, AuditAction.JOB_CANCELED, job_id)
    publish_canceled(state.redis, [job_id])
    enqueue_job_deliveries(state.celery, state.sessions, job_id)
    with state.sessions() as session:
        return _job_response(session.get(Job, job_id), 200)


@bp.delete("/v1/jobs/<job_id>")
def delete_job_route(job_id: str) -> tuple[str, int]:
    """Delete a finished job and its data now: result, webhook deliveries, and its image if no other job uses it."""
    tenant_id = current_tenant()
    with app_state().sessions.begin() as session:
        job = load_job(session, tenant_id, job_id)
        if not JobStatus(job.status).is_terminal():
            raise ApiError("job_not_finished", f"job {job_id} is {job.status}: cancel it first, then delete it", 409)
        if job.batch_id is not None:
            raise ApiError(
                "job_in_batch",
                f"job {job_id} belongs to batch {job.batch_id}, whose results list every job; "
                "its data goes with the retention periods",
                409,
            )
        record_request_action(session, AuditAction.JOB_DELETED, job_id, {"task": job.task})
        delete_job(session, job)
    with app_state().sessions() as session:
        drop_deleted_copies(session)
    return "", 204
