"""`POST /v1/chat/completions`: OpenAI-compatible chat about one image.

Each request becomes an `ask` job on the same queue as every other job, and the
request is held until the job ends (at most `VLMQ_MAX_WAIT_S`). A job that does not
finish in time, or whose streaming client went away, is canceled so an abandoned call
does not keep a GPU busy, unless the call carried an `Idempotency-Key`: then the job
runs on, and a retry with that key (after a timeout or a dropped connection) attaches
to it instead of starting another. With
`stream: true` the text is relayed as it is generated (`web.api.chat_stream`).
"""

from __future__ import annotations

import time
from functools import partial

from flask import Blueprint, Response, jsonify, request, stream_with_context

from shared import jobs
from shared.audit import AuditAction
from shared.cancel_channel import publish_canceled
from shared.clock import utcnow
from shared.job_enqueue import enqueue_job
from shared.models import Job
from shared.states import JobStatus
from shared.webhooks.enqueue import enqueue_job_deliveries
from web.api.audit_records import record_request_action
from web.api.chat_answer import completion, failure
from web.api.chat_input import ChatRequest, chat_to_job
from web.api.chat_stream import relay
from web.api.idempotency import REPLAYED, IdempotentCreate
from web.api.job_records import insert_job
from web.api.openai_objects import dump
from web.api.quotas import check_queue_quota
from web.api.waiting import wait_until_finished
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError, error_response

bp = Blueprint("chat_api", __name__)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response | tuple[Response, int]:
    state = app_state()
    tenant_id = current_tenant()
    once = IdempotentCreate.of_request(Job, tenant_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "the body must be a JSON object in OpenAI's chat completion format")
    chat = ChatRequest.model_validate(body)
    job_id, attached = _job_for(chat, once)
    headers = REPLAYED if attached else {}
    wait_s = state.settings.max_wait_s
    deadline = time.monotonic() + wait_s
    # Without a key the caller cannot come back for the answer, so a call that gives up cancels its job.
    give_up = partial(finished_or_given_up, job_id, cancel=once.key is None)
    if chat.stream:
        include_usage = chat.stream_options is not None and chat.stream_options.include_usage
        events = relay(job_id, deadline, include_usage, give_up, abandon=give_up if once.key is None else None)
        return Response(stream_with_context(events), mimetype="text/event-stream", headers=headers)
    wait_until_finished(state.sessions, job_id, wait_s)
    job = give_up()
    if job.status != JobStatus.SUCCEEDED:
        response, status = error_response(*failure(job, state.settings))
        response.headers.update(headers)
        return response, status
    response = jsonify(dump(completion(job)))
    response.headers.update(headers)
    return response


def _job_for(chat: ChatRequest, once: IdempotentCreate[Job]) -> tuple[str, bool]:
    """The job answering this call: the one an earlier call with the same key made (True), or a new one."""
    state = app_state()
    if (earlier := once.earlier()) is not None:
        return earlier.id, True
    job = chat_to_job(chat, state.settings)

    def insert() -> str:
        with state.sessions.begin() as session:
            check_queue_quota(session, state.settings, once.tenant_id, 1, len(job.image or b""))
            job_id = insert_job(
                session,
                state.settings,
                once.tenant_id,
                job.spec,
                job.image,
                once.key,
                request_hash=once.fingerprint,
                interactive=True,
            ).id
            record_request_action(session, AuditAction.JOB_SUBMITTED, job_id, {"task": job.spec.task, "via": "chat"})
            return job_id

    job_id, earlier = once.create(insert)
    if earlier is not None:
        return earlier.id, True
    assert job_id is not None
    enqueue_job(state.celery, state.sessions, job_id, interactive=True)
    return job_id, False


def finished_or_given_up(job_id: str, cancel: bool) -> Job:
    """The job as this call leaves it; one still queued or running is canceled when `cancel`."""
    state = app_state()
    if cancel:
        with state.sessions.begin() as session:
            canceled = jobs.cancel(session, job_id, utcnow())
        if canceled:
            publish_canceled(state.redis, [job_id])
            enqueue_job_deliveries(state.celery, state.sessions, job_id)
    with state.sessions() as session:
        return session.get_one(Job, job_id)
