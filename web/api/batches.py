"""`/v1/batches`: submit many images at once, follow the batch, read its results, cancel it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context
from sqlalchemy import select

from shared.audit import AuditAction
from shared.batch_view import batch_counts, batch_view, render_batch
from shared.job_enqueue import enqueue_job
from shared.job_view import render
from shared.models import Batch
from web.api.audit_records import record_request_action
from web.api.batch_input import open_batch_body, read_batch_submission
from web.api.batch_records import cancel_unfinished_jobs, insert_batch, load_batch
from web.api.batch_results import FORMATS, batch_rows, csv_lines, jsonl_lines, xlsx_results
from web.api.batch_variants import variant_for_id, variant_for_request
from web.api.idempotency import REPLAYED, IdempotentCreate
from web.api.listing import BatchPage
from web.api.pagination import PageRequest
from web.api.webhook_input import check_job_webhook
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError
from web.urls import base_url

bp = Blueprint("batches_api", __name__)


def _batch_response(batch_id: str, status: int, **headers: str) -> tuple[Response, int, dict[str, str]]:
    """The batch as it is now, counts included."""
    with app_state().sessions() as session:
        return jsonify(render_batch(session, session.get_one(Batch, batch_id), base_url())), status, headers


@bp.post("/v1/batches")
def create_batch() -> tuple[Response, int, dict[str, str]] | Response:
    """Check every item, insert the batch and its jobs in one transaction, commit, then enqueue each job.

    A request another batch API claims (OpenAI's: a JSON body naming an `input_file_id`) goes to it
    (`web/api/batch_variants.py`).
    """
    state = app_state()
    tenant_id = current_tenant()
    open_batch_body(request, state.settings)
    if (variant := variant_for_request()) is not None:
        return variant.create(tenant_id)
    once = IdempotentCreate.of_request(Batch, tenant_id)
    if (replay := once.earlier()) is not None:
        return _batch_response(replay.id, 200, **REPLAYED)

    submission = read_batch_submission(request, state.settings)
    check_job_webhook(submission.items[0].spec, tenant_id)  # webhook fields are shared by every item

    def insert() -> tuple[Batch, list[str]]:
        with state.sessions.begin() as session:
            batch, job_ids = insert_batch(session, state.settings, tenant_id, submission, once.key, once.fingerprint)
            record_request_action(session, AuditAction.BATCH_SUBMITTED, batch.id, {"jobs": len(job_ids)})
            return batch, job_ids

    created, replay = once.create(insert)
    if replay is not None:
        return _batch_response(replay.id, 200, **REPLAYED)
    assert created is not None
    batch, job_ids = created
    for job_id in job_ids:
        enqueue_job(state.celery, state.sessions, job_id)
    return _batch_response(batch.id, 202, Location=f"{base_url()}/v1/batches/{batch.id}")


@bp.get("/v1/batches/<batch_id>")
def get_batch(batch_id: str) -> tuple[Response, int, dict[str, str]] | Response:
    tenant_id = current_tenant()
    if (variant := variant_for_id(batch_id)) is not None:
        return variant.get(tenant_id, batch_id)
    with app_state().sessions() as session:
        load_batch(session, tenant_id, batch_id)
    return _batch_response(batch_id, 200)


@bp.get("/v1/batches")
def list_batches() -> Response:
    state = app_state()
    tenant_id = current_tenant()
    asked = PageRequest.from_args()
    with state.sessions() as session:
        page = asked.read(session, select(Batch).where(Batch.tenant_id == tenant_id), Batch.id)
        counts = batch_counts(session, [batch.id for batch in page.rows])
    listing = BatchPage(
        data=[batch_view(batch, counts[batch.id], base_url()) for batch in page.rows],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
    return jsonify(render(listing))


@bp.get("/v1/batches/<batch_id>/results")
def batch_results(batch_id: str) -> Response:
    """One row per job in submission order; JSON Lines and CSV stream, so any batch size fits in memory."""
    state = app_state()
    tenant_id = current_tenant()
    result_format = request.args.get("format", "jsonl")
    if result_format not in FORMATS:
        raise ApiError("invalid_format", f"format must be one of {', '.join(FORMATS)}")
    with state.sessions() as session:
        load_batch(session, tenant_id, batch_id)
    rows = batch_rows(state.sessions, batch_id)
    if result_format == "xlsx":
        body: Any = xlsx_results(rows)
    else:
        body = stream_with_context((jsonl_lines if result_format == "jsonl" else csv_lines)(rows))
    return Response(
        body,
        content_type=FORMATS[result_format],
        headers={"Content-Disposition": f'attachment; filename="{batch_id}.{result_format}"'},
    )


@bp.post("/v1/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str) -> tuple[Response, int, dict[str, str]] | Response:
    """Cancel every queued or running job of the batch."""
    tenant_id = current_tenant()
    if (variant := variant_for_id(batch_id)) is not None:
        return variant.cancel(tenant_id, batch_id)
    with app_state().sessions() as session:
        load_batch(session, tenant_id, batch_id)
    canceled = cancel_unfinished_jobs(batch_id)
    if not canceled:
        raise ApiError("batch_already_finished", f"every job of batch {batch_id} already ended; nothing to cancel", 409)
    with app_state().sessions.begin() as session:  # the jobs were canceled one transaction each
        record_request_action(session, AuditAction.BATCH_CANCELED, batch_id, {"canceled_jobs": canceled})
    return _batch_response(batch_id, 200)
