"""The files `vlmq batch run` writes and `vlmq eval` reads: one row per photo, keyed by name and SKU.

The suffix picks the format: `.csv` (with a BOM, for Excel), `.jsonl` or `.xlsx`. The
`attributes` fields get columns of their own so a merchandiser can filter on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shared.spreadsheets import BOM, csv_line, read_table, xlsx_bytes
from vlmq.client import CliError

RESULT_COLUMNS = (
    "name",
    "sku",
    "status",
    "category",
    "color",
    "material",
    "key_features",
    "marketing_copy",
    "text",
    "data",
    "error_code",
    "error_message",
    "queue_s",
    "inference_s",
    "feedback_score",
    "feedback_corrections",
    "job_id",
    "batch_id",
    "metadata",
)
ERROR_COLUMNS = ("name", "sku", "status", "error_code", "error_message", "job_id", "batch_id")
SUFFIXES = (".csv", ".jsonl", ".xlsx")
FEATURE_SEPARATOR = "; "


def check_suffix(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise CliError(f"{path}: the file name must end in {', '.join(SUFFIXES)} (that picks the format)")


def errors_path(out: Path) -> Path:
    """`results.csv` → `results.errors.csv`: the photos that did not succeed, and why."""
    return out.with_name(f"{out.stem}.errors{out.suffix}")


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows (dicts) in the format the suffix names; JSON Lines keep every value as it is."""
    check_suffix(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    if suffix == ".csv":
        path.write_text(BOM + csv_line(columns) + "".join(csv_line(values) for values in cells), encoding="utf-8")
    else:
        path.write_bytes(xlsx_bytes(columns, cells))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return FEATURE_SEPARATOR.join(str(part) for part in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a `.csv`, `.jsonl` or `.xlsx` file as dicts keyed by lower-case column names."""
    check_suffix(path)
    try:
        return read_table(path.read_bytes(), path.suffix.lower().lstrip("."))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None
