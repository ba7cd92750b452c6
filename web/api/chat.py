"""`POST /v1/chat/completions`: OpenAI-compatible chat about one image.

Each request becomes an `ask` job on the same queue as every other job, and the
request is held until the job ends (at most `VLMQ_MAX_WAIT_S`). A job that does not
finish in time is canceled, so an abandoned call does not keep a GPU busy. With
`stream: true` the answer comes as server-sent events once the job has finished,
with keep-alive comments while it runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context

from shared.clock import utcnow
from shared.dispatch import enqueue_job
from shared.jobs import cancel
from shared.models import Job
from shared.settings import Settings
from shared.states import JobStatus
from shared.webhooks.dispatch import enqueue_job_deliveries
from web.api.chat_input import ChatRequest, chat_to_job
from web.api.waiting import wait_until_finished
from web.auth import current_tenant
from web.errors import ApiError, error_response
from web.job_records import insert_job
from web.quotas import check_queue_quota
from web.state import app_state

bp = Blueprint("chat_api", __name__)

KEEP_ALIVE_S = 5.0


@bp.post("/v1/chat/completions")
def chat_completions() -> Response | tuple[Response, int]:
    state = app_state()
    tenant_id = current_tenant()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object in OpenAI's chat completion format")
    chat = chat_to_job(ChatRequest.model_validate(body), state.settings)
    with state.sessions.begin() as session:
        check_queue_quota(session, state.settings, tenant_id, 1, len(chat.image or b""))
        job_id = insert_job(session, state.settings, tenant_id, chat.spec, chat.image, interactive=True).id
    enqueue_job(state.celery, state.sessions, job_id, interactive=True)
    deadline = time.monotonic() + state.settings.max_wait_s
    if chat.stream:
        return Response(stream_with_context(_events(job_id, deadline)), mimetype="text/event-stream")
    wait_until_finished(state.sessions, job_id, max(0.0, deadline - time.monotonic()))
    job = _finished_or_canceled(job_id)
    if job.status != JobStatus.SUCCEEDED:
        return error_response(*_failure(job, state.settings))
    return jsonify(_completion(job, state.settings))


def _finished_or_canceled(job_id: str) -> Job:
    """The job once it ended; a job still running at the deadline is canceled."""
    state = app_state()
    with state.sessions.begin() as session:
        canceled = cancel(session, job_id, utcnow())
    if canceled:
        enqueue_job_deliveries(state.celery, state.sessions, job_id)
    with state.sessions() as session:
        return session.get(Job, job_id)


def _failure(job: Job, settings: Settings) -> tuple[int, str, str]:
    if job.status == JobStatus.CANCELED:
        return 504, "timeout", f"job {job.id} did not finish within {settings.max_wait_s:g} s and was canceled"
    return 500, job.error_code or "job_failed", f"job {job.id} failed: {job.error_message}"


def _answer(job: Job, settings: Settings) -> tuple[str, str, dict[str, int]]:
    """The text, OpenAI's finish reason, and usage of a succeeded job."""
    usage = job.result.get("usage", {})
    budget = job.params.get("max_new_tokens", settings.max_new_tokens)
    finish = "length" if usage.get("completion_tokens", 0) >= budget else "stop"
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return (
        job.result["text"],
        finish,
        {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    )


def _envelope(job: Job, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{job.id}",
        "object": kind,
        "created": int(job.created_at.timestamp()),
        "model": job.model,
        "system_fingerprint": None,
    }


def _completion(job: Job, settings: Settings) -> dict[str, Any]:
    text, finish, usage = _answer(job, settings)
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}
    return _envelope(job, "chat.completion") | {"choices": [choice], "usage": usage}


def _chunk(job: Job, delta: dict[str, str], finish: str | None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return f"data: {json.dumps(_envelope(job, 'chat.completion.chunk') | {'choices': [choice]})}\n\n"


def _events(job_id: str, deadline: float) -> Iterator[str]:
    """Keep-alives while the job runs, then the answer as chunks and `[DONE]`."""
    state = app_state()
    while time.monotonic() < deadline:
        with state.sessions() as session:
            if JobStatus(session.get(Job, job_id).status).is_terminal():
                break
        yield ": waiting for the model\n\n"
        wait_until_finished(state.sessions, job_id, min(KEEP_ALIVE_S, max(0.0, deadline - time.monotonic())))
    job = _finished_or_canceled(job_id)
    if job.status != JobStatus.SUCCEEDED:
        _, code, message = _failure(job, state.settings)
        yield f"data: {json.dumps({'error': {'code': code, 'message': message}})}\n\n"
        return
    text, finish, _ = _answer(job, state.settings)
    yield _chunk(job, {"role": "assistant", "content": ""}, None)
    yield _chunk(job, {"content": text}, None)
    yield _chunk(job, {}, finish)
    yield "data: [DONE]\n\n"
