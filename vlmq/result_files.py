"""The files `vlmq batch run` writes and `vlmq eval` reads: one row per photo, keyed by name and SKU.

The suffix picks the format: `.csv` (with a BOM, for Excel), `.jsonl` or `.xlsx`. The
`attributes` fields get columns of their own so a merchandiser can filter on them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from shared.spreadsheets import BOM, FORMULA_STARTS, csv_line, xlsx_bytes
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
    """Rows of a `.csv`, `.jsonl` or `.xlsx` table as dicts keyed by lower-case column names."""
    check_suffix(path)
    if not path.is_file():
        raise CliError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        return [{(key or "").strip().lower(): _undefused(value) for key, value in row.items()} for row in reader]
    sheet = load_workbook(path, read_only=True).active
    table = [list(row) for row in sheet.iter_rows(values_only=True)]
    if not table:
        return []
    header = [str(name or "").strip().lower() for name in table[0]]
    return [dict(zip(header, row, strict=False)) for row in table[1:] if any(value is not None for value in row)]


def _undefused(value: str | None) -> str | None:
    """Undo the `'` that writing put before a formula-like cell."""
    if value and value.startswith("'") and value[1:2] in FORMULA_STARTS:
        return value[1:]
    return value
