"""Tables people open in Excel: CSV with a BOM and XLSX, model text never run as a formula; and reading
them back (with JSON Lines) as rows.

Shared by the API's batch results and evaluation, and the CLI's result and label files.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils.exceptions import InvalidFileException

from shared import safe_json

# Excel reads a CSV as the machine's legacy code page unless it starts with a UTF-8 byte order mark.
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A `;` (a cell boundary in `;` locales), any spaces or quotes, then a formula start; and the same, defused.
_AFTER_SEMICOLON = re.compile(r"(;[ \"]*)(?=[=+\-@\t\r])")
_DEFUSED_AFTER_SEMICOLON = re.compile(r"(;[ \"]*)'(?=[=+\-@\t\r])")


def csv_line(values: Sequence[Any]) -> str:
    """One CSV record; a cell that starts like a formula gets a `'` in front, and so does a formula start
    after a `;` in a cell.

    Model text opens in a shop's spreadsheet, so `=HYPERLINK(...)` written by a model (or
    echoed from a photo) is shown, never run. Excel in many European locales splits CSV at `;`:
    there `a;=HYPERLINK(...)` would start a cell of its own, whatever the quoting.
    """
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_inert(value) for value in values])
    return buffer.getvalue()


def _inert(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = _AFTER_SEMICOLON.sub(r"\1'", value)
    return "'" + value if value[:1] in FORMULA_STARTS else value


def xlsx_bytes(columns: Sequence[str], rows: Iterable[Sequence[Any]], sheet_name: str = "results") -> bytes:
    """A real spreadsheet; every text cell is stored as text, so nothing in it runs as a formula."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    sheet.append(list(columns))
    for row in rows:
        sheet.append([_text_cell(sheet, value) if isinstance(value, str) else value for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _text_cell(sheet: Any, value: str) -> WriteOnlyCell:
    # XML cannot hold most control characters; a tiny model's noise may contain them.
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
    cell.data_type = "s"
    return cell


TABLE_KINDS = ("csv", "jsonl", "xlsx")


def read_table(data: bytes, kind: str) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON Lines or XLSX table, keyed by lower-case column names.

    Raises `ValueError` saying what is wrong with the file.
    """
    if kind == "jsonl":
        try:
            rows = [safe_json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError, safe_json.UnsafeJson) as exc:
            raise ValueError(f"not JSON Lines: {exc}") from None
        if not all(isinstance(row, dict) for row in rows):
            raise ValueError("every JSON Lines row must be an object")
        return rows
    if kind == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("the CSV is not UTF-8 text") from None
        reader = csv.DictReader(io.StringIO(text))
        return [{(key or "").strip().lower(): _undefused(value) for key, value in row.items()} for row in reader]
    if kind == "xlsx":
        try:
            sheet = load_workbook(io.BytesIO(data), read_only=True).active
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
            raise ValueError(f"not an XLSX workbook ({type(exc).__name__})") from None
        table = [list(row) for row in sheet.iter_rows(values_only=True)]
        if not table:
            return []
        header = [str(name or "").strip().lower() for name in table[0]]
        return [dict(zip(header, row, strict=False)) for row in table[1:] if any(value is not None for value in row)]
    raise ValueError(f"unknown table kind {kind!r}; one of {', '.join(TABLE_KINDS)}")


def _undefused(value: str | None) -> str | None:
    """Undo the `'`s that writing put before formula starts."""
    if not value:
        return value
    value = _DEFUSED_AFTER_SEMICOLON.sub(r"\1", value)
    return value[1:] if value.startswith("'") and value[1:2] in FORMULA_STARTS else value
