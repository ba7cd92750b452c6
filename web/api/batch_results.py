"""A batch's results as JSON Lines, CSV or XLSX: one row per job, in submission order.

Jobs are read in pages by `batch_index`, each page (with its jobs' newest feedback) in
its own short session, so JSON Lines and CSV of ten thousand jobs stream without
sitting in memory or holding a transaction open while the client reads. XLSX is a zip
file written whole, so it is built in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.feedback import feedback_to_dict, latest_feedback
from shared.models import Feedback, Job

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
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV as the machine's legacy code page unless it starts with a UTF-8 byte order mark.
BOM = "\ufeff"


def batch_rows(sessions: sessionmaker[Session], batch_id: str) -> Iterator[dict[str, Any]]:
    """Every job of the batch as a result row, in submission order, one page in memory at a time."""
    after = -1
    while True:
        with sessions() as session:
            page = session.scalars(
                select(Job)
                .where(Job.batch_id == batch_id, Job.batch_index > after)
                .order_by(Job.batch_index)
                .limit(PAGE_SIZE)
            ).all()
            feedback = latest_feedback(session, [job.id for job in page])
            rows = [result_row(job, feedback.get(job.id)) for job in page]
        yield from rows
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].batch_index


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
    yield BOM + _csv_line(COLUMNS)
    for row in rows:
        yield _csv_line(flat_values(row))


def xlsx_bytes(rows: Iterator[dict[str, Any]]) -> bytes:
    """A real spreadsheet; every text cell is stored as text, so nothing a model wrote runs as a formula."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("results")
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([_text_cell(sheet, value) if isinstance(value, str) else value for value in flat_values(row)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _text_cell(sheet: Any, value: str) -> WriteOnlyCell:
    # XML cannot hold most control characters; a tiny model's noise may contain them.
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
    cell.data_type = "s"
    return cell


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
