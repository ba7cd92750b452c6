"""`vlmq jobs` and `vlmq batches`: the newest jobs or batches as a table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from vlmq.client import EXIT_OK, ApiClient

STATUS_STYLES = {"succeeded": "green", "completed": "green", "failed": "red", "canceled": "dim", "running": "blue"}


def list_jobs(client: ApiClient, status: str | None, task: str | None, search: str | None, limit: int) -> int:
    query = {"status": status, "task": task, "q": search, "limit": limit}
    jobs = client.json("GET", "/v1/jobs", params={key: value for key, value in query.items() if value})["data"]
    table = Table("id", "status", "task", "name", "sku", "created", "inference s", title=f"{len(jobs)} jobs")
    for job in jobs:
        table.add_row(
            job["id"],
            _status(job["status"]),
            job["task"],
            job.get("name") or "",
            str((job["metadata"] or {}).get("sku", "")),
            job["created_at"],
            _number(job["metrics"]["inference_s"]),
        )
    _print(table)
    return EXIT_OK


def list_batches(client: ApiClient, limit: int) -> int:
    batches = client.json("GET", "/v1/batches", params={"limit": limit})["data"]
    table = Table("id", "status", "task", "progress", "succeeded", "failed", "canceled", "created", title="batches")
    for batch in batches:
        counts = batch["counts"]
        table.add_row(
            batch["id"],
            _status(batch["status"]),
            batch["task"],
            f"{batch['progress'] * 100:.0f}% of {batch['total']}",
            str(counts["succeeded"]),
            str(counts["failed"]),
            str(counts["canceled"]),
            batch["created_at"],
        )
    _print(table)
    return EXIT_OK


def _status(status: str) -> str:
    style = STATUS_STYLES.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.2f}"


def _print(table: Table) -> None:
    # Wide enough for job ids when the output is a pipe (rich assumes 80 columns there).
    Console(width=None if Console().is_terminal else 200).print(table)
