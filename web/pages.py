"""HTML pages for the people who run the catalogue: upload forms, filtered job lists, job and batch pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from sqlalchemy import select

from shared.auth import KeyRefused, authenticate
from shared.batch_view import batch_counts, batch_to_dict, render_batch
from shared.clock import utcnow
from shared.feedback import feedback_to_dict
from shared.job_view import PLACEHOLDER_WARNING, job_to_dict
from shared.models import Batch, Feedback, Job
from shared.request_rules import TASKS
from shared.states import JobStatus
from shared.webhooks.delivery_log import job_deliveries
from web.api.batch_records import load_batch
from web.api.job_records import filter_jobs, load_job
from web.api.jobs import create_job
from web.app_state import app_state
from web.auth import current_tenant
from web.errors import ApiError
from web.page_session import (
    check_csrf,
    check_login_origin,
    clear_key_cookie,
    cookie_key,
    csrf_token,
    safe_next,
    set_key_cookie,
    with_token,
)
from web.urls import base_url

bp = Blueprint("pages", __name__)


@bp.context_processor
def _page_csrf_token() -> dict[str, Any]:
    """Every page's scripts and `/v1` links (images, downloads, JSON) carry the CSRF token of the key in its
    cookie."""
    token = csrf_token(cookie_key())
    return {"csrf_token": token, "with_token": lambda url: with_token(url, token)}


RECENT_JOBS = 20
RECENT_BATCHES = 5
BATCH_PAGE_JOBS = 1000
REFRESH_S = 2


@bp.get("/")
def index() -> str:
    state = app_state()
    tenant_id = current_tenant()
    filters = {name: request.args.get(name) or None for name in ("status", "task", "q")}
    jobs_before, batches_before = request.args.get("jobs_before"), request.args.get("batches_before")
    query = select(Job).where(Job.tenant_id == tenant_id).order_by(Job.id.desc()).limit(RECENT_JOBS + 1)
    if jobs_before:
        query = query.where(Job.id < jobs_before)
    query = filter_jobs(query, filters["status"], filters["task"], filters["q"])
    batch_query = select(Batch).where(Batch.tenant_id == tenant_id).order_by(Batch.id.desc()).limit(RECENT_BATCHES + 1)
    if batches_before:
        batch_query = batch_query.where(Batch.id < batches_before)
    with state.sessions() as session:
        jobs = list(session.scalars(query))
        recent = [job_to_dict(job, base_url()) for job in jobs[:RECENT_JOBS]]
        batches = list(session.scalars(batch_query))
        counts = batch_counts(session, [batch.id for batch in batches[:RECENT_BATCHES]])
        recent_batches = [batch_to_dict(batch, counts[batch.id], base_url()) for batch in batches[:RECENT_BATCHES]]
    return render_template(
        "index.html",
        jobs=recent,
        batches=recent_batches,
        older_jobs=_older_link(jobs, RECENT_JOBS, "jobs_before"),
        older_batches=_older_link(batches, RECENT_BATCHES, "batches_before"),
        newest=url_for(".index", **filters) if jobs_before or batches_before else None,
        tasks=TASKS,
        statuses=[status.value for status in JobStatus],
        filters=filters,
        placeholder_warning=PLACEHOLDER_WARNING if state.settings.uses_placeholder_model else None,
    )


def _older_link(rows: list[Job] | list[Batch], shown: int, argument: str) -> str | None:
    """The home page after the `shown` newest of `rows` (read one past them), the other arguments kept; None when
    nothing is older. Ids grow with time, so `argument` is the last id shown."""
    if len(rows) <= shown:
        return None
    return url_for(".index", **(request.args.to_dict() | {argument: rows[shown - 1].id}))


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> str:
    tenant_id = current_tenant()
    with app_state().sessions() as session:
        job = load_job(session, tenant_id, job_id)
        view = job_to_dict(job, base_url())
        deliveries = job_deliveries(session, job_id)
        feedback = [
            feedback_to_dict(entry)
            for entry in session.scalars(select(Feedback).where(Feedback.job_id == job_id).order_by(Feedback.id.desc()))
        ]
    finished = JobStatus(view["status"]).is_terminal()
    data = (view["result"] or {}).get("data")
    attributes = list(data.items()) if isinstance(data, dict) else []
    return render_template(
        "job.html",
        job=view,
        finished=finished,
        attributes=attributes,
        result_text=_readable(view["result"]),
        correctable=[field for field, _ in attributes] or ["text"],
        feedback=feedback,
        deliveries=deliveries,
        refresh_s=None if finished else REFRESH_S,
    )


def _readable(result: dict[str, Any] | None) -> str:
    """The result as a person would paste it: `field: value` lines for structured data, else the text."""
    if not result:
        return ""
    data = result.get("data")
    if not isinstance(data, dict):
        return result.get("text") or ""
    lines = []
    for field, value in data.items():
        shown = ", ".join(str(part) for part in value) if isinstance(value, list) else value
        lines.append(f"{field.replace('_', ' ').capitalize()}: {shown}")
    return "\n".join(lines)


@bp.get("/batches/<batch_id>")
def batch_page(batch_id: str) -> str:
    state = app_state()
    tenant_id = current_tenant()
    with state.sessions() as session:
        batch = render_batch(session, load_batch(session, tenant_id, batch_id), base_url())
        jobs = session.scalars(
            select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_index).limit(BATCH_PAGE_JOBS)
        )
        rows = [
            job_to_dict(job, base_url())
            | {"index": job.batch_index, "summary": _readable(job.result).replace("\n", "; ")}
            for job in jobs
        ]
    refresh_s = None if batch["completed_at"] else REFRESH_S
    # As on the home page; also for a batch the placeholder ran before a real model was set.
    noise = state.settings.uses_placeholder_model or any(
        PLACEHOLDER_WARNING in (row.get("warnings") or []) for row in rows
    )
    return render_template(
        "batch.html",
        batch=batch,
        jobs=rows,
        shown_limit=BATCH_PAGE_JOBS,
        refresh_s=refresh_s,
        placeholder_warning=PLACEHOLDER_WARNING if noise else None,
    )


@bp.post("/upload")
def upload() -> tuple[Response, int, dict[str, str]]:
    """The upload form's submission: `POST /v1/jobs` for a page, behind its CSRF token."""
    check_csrf()
    return create_job()


@bp.post("/login")
def login() -> Response | tuple[str, int]:
    """Check a key typed into the page and keep it in an HttpOnly cookie."""
    state = app_state()
    check_login_origin(state.settings)
    key = request.form.get("api_key", "").strip()
    try:
        with state.sessions.begin() as session:
            authenticate(session, key, utcnow())
    except KeyRefused as exc:
        return render_template("error.html", error=ApiError(exc.code, exc.message, 401)), 401
    response = redirect(safe_next(request.form.get("next")), code=303)
    set_key_cookie(response, key, state.settings)
    return response


@bp.post("/logout")
def logout() -> Response:
    """Forget the key: the cookie is cleared (behind the page's CSRF token, so no other page can sign one out)."""
    check_csrf()
    response = redirect("/", code=303)
    clear_key_cookie(response)
    return response
