"""Writing rows that people open in Excel: CSV with a BOM and XLSX, model text never run as a formula.

Shared by the API's batch results and the CLI's result files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

# Excel reads a CSV as the machine's legacy code page unless it starts with a UTF-8 byte order mark.
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_line(values: Sequence[Any]) -> str:
    """One CSV record; a cell that starts like a formula gets a `'` in front.

    Model text opens in a shop's spreadsheet, so `=HYPERLINK(...)` written by a model (or
    echoed from a photo) is shown, never run.
    """
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_inert(value) for value in values])
    return buffer.getvalue()


def _inert(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


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
