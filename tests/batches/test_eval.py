"""`vlmq eval` on the test catalogue: every number equals the one worked out by hand below."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from shared.evaluation import evaluate
from tests.support.catalogue import catalogue
from tests.support.live_service import VLMQ, vlmq_env
from vlmq.cli import main
from vlmq.result_files import ERROR_COLUMNS, RESULT_COLUMNS, write_rows

# The first six photos of the catalogue (labels: category, color, material, key features):
#   sku-0000 shoes red    leather  lace-up; rubber sole
#   sku-0001 bag   blue   canvas   zip; shoulder strap
#   sku-0002 mug   green  ceramic  handle; dishwasher safe
#   sku-0003 shoes black  leather  (its job failed)
#   sku-0004 bag   red    canvas
#   sku-0005 mug   blue   ceramic
# What the model said, with the mistakes marked, and the feedback people gave:
OUTPUTS: list[dict[str, Any]] = [
    # all right; features {lace-up, rubber sole} = labels: Jaccard 1; feedback 5, no edits: usable
    {"sku": "sku-0000", "category": "shoes", "color": "Red ", "material": "leather",
     "key_features": ["lace-up", "rubber sole"], "inference_s": 0.5, "queue_s": 0.1,
     "feedback_score": 5, "feedback_corrections": {}},
    # category and material wrong; features {zip} vs {zip, shoulder strap}: 1/2; feedback 2 with an edit
    {"sku": "sku-0001", "category": "shoes", "color": "blue", "material": "leather",
     "key_features": ["zip"], "inference_s": 1.0, "queue_s": 0.2,
     "feedback_score": 2, "feedback_corrections": {"category": "bag"}},
    # material wrong; features {handle, pocket} vs {handle, dishwasher safe}: 1/3; feedback 4, no edits: usable
    {"sku": "sku-0002", "category": "mug", "color": "green", "material": "porcelain",
     "key_features": ["handle", "pocket"], "inference_s": 1.5, "queue_s": 0.3,
     "feedback_score": 4, "feedback_corrections": {}},
    # failed: missing, and left out of the latency
    {"sku": "sku-0003", "status": "failed", "inference_s": 3.0, "queue_s": 9.0},
    # color wrong; no features: Jaccard 0
    {"sku": "sku-0004", "category": "bag", "color": "black", "material": "canvas",
     "key_features": [], "inference_s": 2.0, "queue_s": 0.4},
    # all right: Jaccard 1
    {"sku": "sku-0005", "category": "mug", "color": "blue", "material": "ceramic",
     "key_features": ["dishwasher safe", "handle"], "inference_s": 2.5, "queue_s": 0.5},
    # a photo nobody labelled: not judged, but its feedback (4 with an edit: not usable) and latency count
    {"sku": "extra-1", "category": "mug", "inference_s": 10.0, "queue_s": 0.6,
     "feedback_score": 4, "feedback_corrections": {"color": "green"}},
]  # fmt: skip

EXPECTED = {
    # sku-0003 failed: 5 of the 6 labelled photos have an output.
    "items": {"labelled": 6, "with_output": 5, "missing": ["sku-0003"]},
    "accuracy": {
        "category": {"correct": 4, "judged": 5, "accuracy": 0.8},  # sku-0001 wrong
        "color": {"correct": 4, "judged": 5, "accuracy": 0.8},  # sku-0004 wrong ("Red " matches "red")
        "material": {"correct": 3, "judged": 5, "accuracy": 0.6},  # sku-0001 and sku-0002 wrong
    },
    "category": {
        "classes": ["bag", "mug", "shoes"],
        # (label, output): (shoes, shoes) (bag, shoes) (mug, mug) (bag, bag) (mug, mug)
        "confusion": [[1, 0, 1], [0, 2, 0], [0, 0, 1]],
        # bag: 1 of 1 output right, 1 of 2 found; mug 2/2, 2/2; shoes: 1 of 2 outputs right, 1 of 1 found
        "precision": {"bag": 1.0, "mug": 1.0, "shoes": 0.5},
        "recall": {"bag": 0.5, "mug": 1.0, "shoes": 1.0},
        "macro_precision": 0.8333,  # 2.5 / 3
        "macro_recall": 0.8333,
    },
    "key_features": {"judged": 5, "mean_jaccard": 0.5667},  # (1 + 1/2 + 1/3 + 0 + 1) / 5
    "feedback": {"with_feedback": 4, "usable_without_edits": 2, "share": 0.5},
    "latency_s": {
        # succeeded: 0.5 1.0 1.5 2.0 2.5 10.0; nearest rank: p50 = 3rd, p90 = p95 = 6th
        "inference": {"count": 6, "p50": 1.5, "p90": 10.0, "p95": 10.0, "max": 10.0},
        "queue": {"count": 6, "p50": 0.3, "p90": 0.6, "p95": 0.6, "max": 0.6},
    },
}


def results_rows() -> list[dict[str, Any]]:
    return [{"status": "succeeded", "name": f"{row['sku']}.png"} | row for row in OUTPUTS]


@pytest.mark.parametrize(
    ("labels_suffix", "results_suffix"), [(".xlsx", ".csv"), (".csv", ".jsonl"), (".csv", ".xlsx")]
)
def test_eval_numbers_equal_the_hand_computed_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], labels_suffix: str, results_suffix: str
) -> None:
    labels = tmp_path / f"labels{labels_suffix}"
    write_rows(
        labels, ("sku", "name", "category", "color", "material", "key_features"), [p.label for p in catalogue(6)]
    )
    results = tmp_path / f"results{results_suffix}"
    write_rows(results, RESULT_COLUMNS, results_rows())
    report = tmp_path / "report.html"

    assert main(["eval", str(labels), "--results", str(results), "--report", str(report)]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED

    page = report.read_text()
    assert "80.0 %" in page and "60.0 %" in page and "50.0 % of 4 reviewed" in page
    charts = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(charts) == 3  # accuracy, confusion matrix, latency
    for chart in charts:
        with Image.open(io.BytesIO(base64.b64decode(chart))) as image:
            assert image.format == "PNG" and image.size[0] > 200


def test_the_report_prints_nothing_but_the_measures(tmp_path: Path) -> None:
    """Charts on a machine where matplotlib has no font cache yet: no font lines on stderr."""
    labels, results = tmp_path / "labels.csv", tmp_path / "results.csv"
    write_rows(labels, ("sku", "category", "color", "material", "key_features"), [p.label for p in catalogue(6)])
    write_rows(results, RESULT_COLUMNS, results_rows())
    run = subprocess.run(
        [VLMQ, "eval", str(labels), "--results", str(results), "--report", str(tmp_path / "report.html")],
        env=vlmq_env() | {"MPLCONFIGDIR": str(tmp_path / "matplotlib")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stderr == ""
    assert json.loads(run.stdout) == EXPECTED


def test_labels_without_skus_match_by_file_name() -> None:
    labels = [{"name": p.name} | {k: v for k, v in p.label.items() if k != "sku"} for p in catalogue(6)]
    measures = evaluate(labels, [row | {"sku": None} for row in results_rows()])
    assert measures["accuracy"] == EXPECTED["accuracy"]


def test_unusable_inputs_get_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.csv"
    write_rows(results, ERROR_COLUMNS, [])
    no_key = tmp_path / "labels.csv"
    no_key.write_text("category,color\nshoes,red\n")
    assert main(["eval", str(no_key), "--results", str(results)]) == 2
    assert "need a 'sku' or 'name' column" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nope.csv"), "--results", str(results)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["eval", str(no_key), "--results", str(tmp_path / "results.txt")]) == 2
    assert "must end in .csv, .jsonl, .xlsx" in capsys.readouterr().err
