"""OpenAI's Batch API on `/v1/batches`, beside vlmq's own batches.

`POST /v1/batches` with a JSON body naming an `input_file_id` is OpenAI's shape; its
requests are checked and stored as the `ask` jobs of one ordinary vlmq batch (so the
queue, the sweeper, cancel and `batch.completed` all work as for any batch), and an
`openai_batches` row keeps what OpenAI's clients ask for: the input file, each
request's `custom_id`, the endpoint, the window. Ids tell the shapes apart: OpenAI
batches are `batch_...`, vlmq's are `bat_...`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from shared.audit import AuditAction
from shared.batch_schemas import BatchCreate
from shared.batch_view import batch_counts
from shared.clock import utcnow
from shared.errors import ServiceError
from shared.ids import new_id
from shared.job_enqueue import enqueue_job
from shared.models import Batch, OpenAIBatch
from web.api.audit_records import record_request_action
from web.api.batch_input import BatchSubmission
from web.api.batch_records import cancel_unfinished_jobs, insert_batch
from web.api.batch_variants import BatchVariant
from web.api.chat_input import chat_to_job
from web.api.job_input import JobSubmission
from web.api.openai_objects import BatchObject, RequestCounts, dump
from web.app_state import app_state
from web.errors import ApiError
from web.openai.batch_file import parse_batch_file
from web.openai.batch_files import error_file_id, output_file_id
from web.openai.files import load_file

PREFIX = "batch_"
WINDOW = timedelta(hours=24)


class OpenAIBatchCreate(BaseModel):
    """OpenAI's batch request: only chat completions, only the 24 h window."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(max_length=40)
    endpoint: Literal["/v1/chat/completions"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = Field(None, max_length=16)


def is_openai_batch_request() -> bool:
    """A JSON body naming an input file is OpenAI's batch shape."""
    body = request.get_json(silent=True) if request.mimetype == "application/json" else None
    return isinstance(body, dict) and "input_file_id" in body


def is_openai_batch_id(batch_id: str) -> bool:
    return batch_id.startswith(PREFIX)


def create_openai_batch(tenant_id: str) -> Response:
    state = app_state()
    spec = OpenAIBatchCreate.model_validate(request.get_json())
    stored = load_file(tenant_id, spec.input_file_id)
    lines = parse_batch_file(stored.data, state.settings.max_batch_items)
    items = []
    for line in lines:
        try:
            job = chat_to_job(line.body, state.settings)
        except ServiceError as exc:
            raise exc.at(f"request {line.custom_id!r}") from None
        items.append(JobSubmission(job.spec, job.image))
    submission = BatchSubmission(shared=BatchCreate(task="ask"), items=items)
    with state.sessions.begin() as session:
        batch, job_ids = insert_batch(session, state.settings, tenant_id, submission, None)
        openai_batch = OpenAIBatch(
            id=new_id(PREFIX.rstrip("_")),
            tenant_id=tenant_id,
            batch_id=batch.id,
            input_file_id=stored.id,
            endpoint=spec.endpoint,
            completion_window=spec.completion_window,
            custom_ids=[line.custom_id for line in lines],
            meta=spec.metadata,
            created_at=utcnow(),
        )
        session.add(openai_batch)
        detail = {"jobs": len(job_ids), "batch_id": batch.id}
        record_request_action(session, AuditAction.BATCH_SUBMITTED, openai_batch.id, detail)
    for job_id in job_ids:
        enqueue_job(state.celery, state.sessions, job_id)
    return _batch_response(tenant_id, openai_batch.id)


def get_openai_batch(tenant_id: str, batch_id: str) -> Response:
    return _batch_response(tenant_id, batch_id)


def cancel_openai_batch(tenant_id: str, batch_id: str) -> Response:
    """Stop the batch's queued and running requests; it reads `cancelling`, then `cancelled`."""
    state = app_state()
    with state.sessions.begin() as session:
        openai_batch = _load(session, tenant_id, batch_id)
        if session.get_one(Batch, openai_batch.batch_id).completed_at is not None:
            raise ApiError("batch_already_finished", f"batch {batch_id} already ended; nothing to cancel", 409)
        openai_batch.cancelling_at = openai_batch.cancelling_at or utcnow()
        record_request_action(session, AuditAction.BATCH_CANCELED, batch_id)
        inner_id = openai_batch.batch_id
    cancel_unfinished_jobs(inner_id)
    return _batch_response(tenant_id, batch_id)


OPENAI_BATCHES = BatchVariant(
    claims_request=is_openai_batch_request,
    claims_id=is_openai_batch_id,
    create=create_openai_batch,
    get=get_openai_batch,
    cancel=cancel_openai_batch,
)
"""Served at `/v1/batches` once `create_app` registers it."""


def _load(session: Session, tenant_id: str, batch_id: str) -> OpenAIBatch:
    openai_batch = session.get(OpenAIBatch, batch_id)
    if openai_batch is None or openai_batch.tenant_id != tenant_id:
        raise ApiError("batch_not_found", f"no batch {batch_id!r}", 404)
    return openai_batch


def _batch_response(tenant_id: str, batch_id: str) -> Response:
    with app_state().sessions() as session:
        openai_batch = _load(session, tenant_id, batch_id)
        batch = session.get_one(Batch, openai_batch.batch_id)
        counts = batch_counts(session, [batch.id])[batch.id]
    return jsonify(dump(batch_object(openai_batch, batch, counts)))


def batch_object(openai_batch: OpenAIBatch, batch: Batch, counts: dict[str, int]) -> BatchObject:
    """The batch as OpenAI reports it; result files appear once every request has ended."""
    created = int(openai_batch.created_at.timestamp())
    ended = int(batch.completed_at.timestamp()) if batch.completed_at else None
    cancelling = int(openai_batch.cancelling_at.timestamp()) if openai_batch.cancelling_at else None
    if ended is None:
        status = "cancelling" if cancelling else "in_progress"
    else:
        status = "cancelled" if cancelling else "completed"
    has_output = ended is not None and counts["succeeded"] > 0
    has_errors = ended is not None and counts["failed"] + counts["canceled"] > 0
    return BatchObject(
        id=openai_batch.id,
        endpoint=openai_batch.endpoint,
        input_file_id=openai_batch.input_file_id,
        completion_window=openai_batch.completion_window,
        status=status,  # type: ignore[arg-type]
        output_file_id=output_file_id(openai_batch.id) if has_output else None,
        error_file_id=error_file_id(openai_batch.id) if has_errors else None,
        created_at=created,
        in_progress_at=created,
        expires_at=int((openai_batch.created_at + WINDOW).timestamp()),
        finalizing_at=ended,
        completed_at=ended if status == "completed" else None,
        cancelling_at=cancelling,
        cancelled_at=ended if status == "cancelled" else None,
        request_counts=RequestCounts(
            total=batch.total, completed=counts["succeeded"], failed=counts["failed"] + counts["canceled"]
        ),
        metadata=openai_batch.meta,
    )
