"""CSV results are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

from shared.models import Job
from shared.spreadsheets import BOM
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
