"""A batch's results as JSON Lines, CSV or XLSX: one row per job, in submission order.

Jobs are read in pages by `batch_index`, each page (with its jobs' newest feedback) in
its own short session, so JSON Lines and CSV of ten thousand jobs stream without
sitting in memory or holding a transaction open while the client reads. XLSX is a zip
file written whole, so it is built in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.feedback import feedback_to_dict, latest_feedback
from shared.job_view import job_metrics
from shared.models import Feedback, Job
from shared.spreadsheets import BOM, csv_line, xlsx_bytes

PAGE_SIZE = 500
COLUMNS = (
    "index",
    "job_id",
    "name",
    "sku",
    "status",
    "text",
    "data",
    "error_code",
    "error_message",
    "metadata",
    "feedback_score",
    "feedback_corrections",
    "feedback_comment",
)
FORMATS = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def batch_job_pages(sessions: sessionmaker[Session], batch_id: str) -> Iterator[list[Job]]:
    """The batch's jobs in submission order, a page at a time (one page in memory)."""
    after = -1
    while True:
        with sessions() as session:
            page = list(
                session.scalars(
                    select(Job)
                    .where(Job.batch_id == batch_id, Job.batch_index > after)
                    .order_by(Job.batch_index)
                    .limit(PAGE_SIZE)
                )
            )
        if page:
            yield page
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].batch_index


def batch_jobs(sessions: sessionmaker[Session], batch_id: str) -> Iterator[Job]:
    """Every job of the batch in submission order."""
    for page in batch_job_pages(sessions, batch_id):
        yield from page


def batch_rows(sessions: sessionmaker[Session], batch_id: str) -> Iterator[dict[str, Any]]:
    """Every job of the batch as a result row (with its newest feedback), in submission order."""
    for page in batch_job_pages(sessions, batch_id):
        with sessions() as session:
            feedback = latest_feedback(session, [job.id for job in page])
        yield from (result_row(job, feedback.get(job.id)) for job in page)


def result_row(job: Job, feedback: Feedback | None = None) -> dict[str, Any]:
    """One job's line: its result only once it succeeded, its error once it failed, its newest feedback."""
    return {
        "index": job.batch_index,
        "job_id": job.id,
        "name": job.source_name,
        "status": job.status,
        "result": job.result,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "metadata": job.meta,
        "metrics": job_metrics(job),
        "feedback": feedback_to_dict(feedback) if feedback is not None else None,
    }


def jsonl_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


def flat_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row as spreadsheet cells in `COLUMNS` order; `data`, `metadata` and corrections hold JSON text."""
    result, error, feedback = row["result"] or {}, row["error"] or {}, row["feedback"] or {}
    data = result.get("data")
    sku = (row["metadata"] or {}).get("sku")
    return (
        row["index"],
        row["job_id"],
        row["name"] or "",
        "" if sku is None else str(sku),
        row["status"],
        result.get("text", ""),
        "" if data is None else json.dumps(data, ensure_ascii=False),
        error.get("code", ""),
        error.get("message", ""),
        json.dumps(row["metadata"], ensure_ascii=False),
        feedback.get("score", ""),
        json.dumps(feedback["corrections"], ensure_ascii=False) if feedback else "",
        feedback.get("comment") or "",
    )


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """CSV with a BOM and a header; formula-like cells are defused."""
    yield BOM + csv_line(COLUMNS)
    for row in rows:
        yield csv_line(flat_values(row))


def xlsx_results(rows: Iterator[dict[str, Any]]) -> bytes:
    return xlsx_bytes(COLUMNS, (flat_values(row) for row in rows))
