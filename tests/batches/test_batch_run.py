"""`vlmq batch run` from a CSV against a live server and the real runner: SKUs and metadata from the
columns, a corrupt photo refused and a missing one reported, the rest processed, nothing resent."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.support.catalogue import catalogue
from vlmq.cli import main


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_csv_run_reports_bad_photos_and_processes_the_rest(
    live_url: str, gpu_thread: None, client: FlaskClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shoe, bag = catalogue(2)
    (tmp_path / "shoe.png").write_bytes(shoe.png())
    (tmp_path / "bag.png").write_bytes(bag.png())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    table = tmp_path / "catalogue.csv"
    table.write_text(
        "Path,SKU,season,note\n"
        "shoe.png,S-1,spring,\n"
        "broken.png,S-2,spring,\n"
        "missing.png,S-3,,\n"
        "bag.png,S-4,summer,=1+1\n",
        encoding="utf-8",
    )
    out = tmp_path / "out" / "results.csv"
    out.parent.mkdir()
    run = ["batch", "run", str(table), "--task", "describe", "--param", "max_new_tokens=2", "--out", str(out)]

    assert main([*run, "--url", live_url]) == 1  # not every photo succeeded
    err = capsys.readouterr().err
    assert "2/4 succeeded" in err

    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    by_name = {row["name"]: row for row in rows}
    assert {name: row["status"] for name, row in by_name.items()} == {
        "shoe.png": "succeeded",
        "bag.png": "succeeded",
        "broken.png": "refused",
        "missing.png": "unreadable",
    }
    assert by_name["broken.png"]["error_code"] == "invalid_image"
    assert by_name["bag.png"]["sku"] == "S-4"
    assert by_name["bag.png"]["metadata"] == '{"sku": "S-4", "season": "summer", "note": "=1+1"}'
    errors = list(csv.DictReader(io.StringIO((out.parent / "results.errors.csv").read_text(encoding="utf-8-sig"))))
    assert sorted(row["sku"] for row in errors) == ["S-2", "S-3"]
    batches = client.get("/v1/batches").get_json()["data"]
    assert [batch["total"] for batch in batches] == [2]

    assert main([*run, "--url", live_url]) == 1
    assert "(1 already sent by an earlier run)" in capsys.readouterr().err
    assert len(client.get("/v1/batches").get_json()["data"]) == 1  # nothing sent twice


def test_bad_sources_get_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    no_path = tmp_path / "no-path.csv"
    no_path.write_text("sku,color\nS-1,red\n")
    both = tmp_path / "both.csv"
    both.write_text("path,url\na.png,https://example.com/a.png\n")
    for source, message in (
        (empty, "holds no photos"),
        (no_path, "needs a 'path' or 'url' column"),
        (both, "line 2: give exactly one of a path or a url"),
        (tmp_path / "nope.txt", "neither a folder of photos nor a .csv"),
    ):
        assert main(["batch", "run", str(source), "--task", "describe", "--url", "http://127.0.0.1:1"]) == 2
        assert message in capsys.readouterr().err
    assert main(["batch", "run", str(empty), "--task", "describe", "--out", "results.txt"]) == 2
    assert "must end in .csv, .jsonl, .xlsx" in capsys.readouterr().err
