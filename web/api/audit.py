"""`/v1/audit`: the calling tenant's audit log, a page at a time or exported whole as JSON Lines or CSV."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request, stream_with_context
from pydantic import BaseModel
from sqlalchemy import Select

from shared.audit import AuditAction, AuditEventView, audit_query, audit_view
from shared.job_view import render
from shared.models import AuditEvent
from shared.spreadsheets import BOM, csv_line
from web.api.pagination import PageRequest
from web.api.query_args import time_query_arg
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError

bp = Blueprint("audit_api", __name__)

EXPORT_FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
EXPORT_PAGE = 500
CSV_COLUMNS = ("id", "created_at", "tenant_id", "actor", "action", "target_id", "detail")


class AuditPage(BaseModel):
    """Audit events, newest first; pass `next_cursor` as `cursor` for the next page."""

    data: list[AuditEventView]
    has_more: bool
    next_cursor: str | None


@bp.get("/v1/audit")
def list_audit_events() -> Response:
    state = app_state()
    asked = PageRequest.from_args()
    query = _filtered()
    with state.sessions() as session:
        page = asked.read(session, query, AuditEvent.id)
    listing = AuditPage(
        data=[audit_view(event) for event in page.rows], has_more=page.has_more, next_cursor=page.next_cursor
    )
    return jsonify(render(listing))


@bp.get("/v1/audit/export")
def export_audit_events() -> Response:
    """Every matching event, oldest first, streamed a page at a time so any log size fits in memory."""
    export_format = request.args.get("format", "jsonl")
    if export_format not in EXPORT_FORMATS:
        raise ApiError("invalid_format", f"format must be one of {', '.join(EXPORT_FORMATS)}")
    views = _all_views(_filtered())
    lines = _jsonl_lines(views) if export_format == "jsonl" else _csv_lines(views)
    return Response(
        stream_with_context(lines),
        content_type=EXPORT_FORMATS[export_format],
        headers={"Content-Disposition": f'attachment; filename="audit.{export_format}"'},
    )


def _filtered() -> Select[tuple[AuditEvent]]:
    tenant_id = current_tenant()
    actions = []
    for name in filter(None, request.args.get("action", "").split(",")):
        try:
            actions.append(AuditAction(name.strip()))
        except ValueError:
            accepted = ", ".join(action.value for action in AuditAction)
            raise ApiError("invalid_action", f"action {name!r} is not one of {accepted}") from None
    return audit_query(tenant_id, actions, time_query_arg("since"), time_query_arg("until"))


def _all_views(query: Select[tuple[AuditEvent]]) -> Iterator[AuditEventView]:
    sessions, after = app_state().sessions, ""
    while True:
        with sessions() as session:
            events = list(
                session.scalars(query.where(AuditEvent.id > after).order_by(AuditEvent.id).limit(EXPORT_PAGE))
            )
        yield from (audit_view(event) for event in events)
        if len(events) < EXPORT_PAGE:
            return
        after = events[-1].id


def _jsonl_lines(views: Iterator[AuditEventView]) -> Iterator[str]:
    for view in views:
        yield json.dumps(render(view), ensure_ascii=False) + "\n"


def _csv_lines(views: Iterator[AuditEventView]) -> Iterator[str]:
    """CSV with a BOM and a header; `detail` is JSON text, and formula-like cells are defused."""
    yield BOM + csv_line(CSV_COLUMNS)
    for view in views:
        row = render(view)
        row["detail"] = "" if view.detail is None else json.dumps(view.detail, ensure_ascii=False)
        yield csv_line([row[column] or "" for column in CSV_COLUMNS])
