"""A batch's results as JSON Lines or CSV: one row per job, in submission order, streamed.

Jobs are read in pages by `batch_index`, each page in its own short session, so a batch
of ten thousand jobs never sits in memory and holds no transaction open while the
client reads.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job

PAGE_SIZE = 500
CSV_COLUMNS = ("index", "job_id", "status", "text", "data", "error_code", "error_message", "metadata")
FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def batch_jobs(sessions: sessionmaker[Session], batch_id: str) -> Iterator[Job]:
    """Every job of the batch in submission order, one page of rows in memory at a time."""
    after = -1
    while True:
        with sessions() as session:
            page = session.scalars(
                select(Job)
                .where(Job.batch_id == batch_id, Job.batch_index > after)
                .order_by(Job.batch_index)
                .limit(PAGE_SIZE)
            ).all()
        yield from page
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].batch_index


def result_row(job: Job) -> dict[str, Any]:
    """One job's line: its result only once it succeeded, its error once it failed."""
    return {
        "index": job.batch_index,
        "job_id": job.id,
        "status": job.status,
        "result": job.result,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "metadata": job.meta,
    }


def jsonl_lines(jobs: Iterator[Job]) -> Iterator[str]:
    for job in jobs:
        yield json.dumps(result_row(job), ensure_ascii=False, separators=(",", ":")) + "\n"


def csv_lines(jobs: Iterator[Job]) -> Iterator[str]:
    """CSV with a header; `data` and `metadata` hold JSON text; formula-like cells are defused."""
    yield _csv_line(CSV_COLUMNS)
    for job in jobs:
        row = result_row(job)
        result, error = row["result"] or {}, row["error"] or {}
        data = result.get("data")
        yield _csv_line(
            (
                row["index"],
                row["job_id"],
                row["status"],
                result.get("text", ""),
                "" if data is None else json.dumps(data, ensure_ascii=False),
                error.get("code", ""),
                error.get("message", ""),
                json.dumps(row["metadata"], ensure_ascii=False),
            )
        )


def _csv_line(values: tuple[Any, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_inert(value) for value in values])
    return buffer.getvalue()


def _inert(value: Any) -> Any:
    """Model text opens in a shop's spreadsheet: a cell starting like a formula gets a `'` in front,
    so `=HYPERLINK(...)` written by a model (or echoed from a photo) is shown, never run."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value
