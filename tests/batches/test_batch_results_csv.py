"""CSV results are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pytest

from shared.models import Job
from shared.spreadsheets import BOM, FORMULA_STARTS, csv_line, read_table
from web.api.batch_results import csv_lines, result_row


def test_formula_like_cells_are_shown_not_run() -> None:
    job = Job(
        id="job_1",
        batch_index=0,
        status="succeeded",
        result={"text": '=HYPERLINK("http://evil.example","click")', "data": None},
        meta={"sku": "-42"},
        error_code=None,
        error_message=None,
    )
    text = "".join(csv_lines(iter([result_row(job)])))
    assert text.startswith(BOM)
    header, row = csv.reader(io.StringIO(text.removeprefix(BOM)))
    cells = dict(zip(header, row, strict=True))
    assert cells["text"] == '\'=HYPERLINK("http://evil.example","click")'
    assert cells["job_id"] == "job_1" and cells["index"] == "0"
    assert cells["metadata"] == '{"sku": "-42"}'  # JSON text starts with "{": left alone


@pytest.mark.parametrize("separator", [",", ";"])
def test_no_cell_starts_like_a_formula_whatever_separator_the_spreadsheet_splits_at(separator: str) -> None:
    """Excel in `;` locales splits CSV at `;`: `a;=1+1` must not give it a cell `=1+1`."""
    hostile = ['ok;=HYPERLINK("http://evil.example")', "a,b;@SUM(1)", 'q; "-2+3', "=1+1", ";+cmd", 7, None]
    (cells,) = csv.reader(io.StringIO(csv_line(hostile)), delimiter=separator)
    assert cells, "a record"
    assert not [cell for cell in cells if cell[:1] in FORMULA_STARTS], cells


def test_defused_cells_read_back_as_written() -> None:
    hostile = ['ok;=HYPERLINK("http://evil.example")', "a,b; @SUM(1)", "=1+1", "plain; text"]
    text = csv_line(["text"]) + "".join(csv_line([value]) for value in hostile)
    assert [row["text"] for row in read_table(text.encode(), "csv")] == hostile
