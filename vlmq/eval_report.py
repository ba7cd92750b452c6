"""`vlmq eval`: measure a results file against a person's labels; print the numbers, write an HTML report.

The report is one self-contained HTML file (charts embedded as PNG data URIs) that a
manager can open, mail or archive without the service.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from shared.evaluation import FIELDS, LabelsError, evaluate
from vlmq.client import EXIT_OK, CliError
from vlmq.result_files import read_rows


def run_eval(labels_path: Path, results_path: Path, report: Path | None) -> int:
    """Print the measures as JSON on stdout; write the HTML report when asked."""
    try:
        measures = evaluate(read_rows(labels_path), read_rows(results_path))
    except LabelsError as exc:
        raise CliError(f"{labels_path}: {exc}") from None
    print(json.dumps(measures, indent=2, ensure_ascii=False))
    if report is not None:
        report.write_text(render_report(measures, f"{results_path.name} against {labels_path.name}"), encoding="utf-8")
    return EXIT_OK


def render_report(measures: dict[str, Any], title: str) -> str:
    """The measures as an HTML page with three charts: accuracy, the category confusion matrix, latency."""
    items, feedback = measures["items"], measures["feedback"]
    summary = [
        ("Labelled photos", items["labelled"]),
        ("With a result", items["with_output"]),
        ("Missing or failed", len(items["missing"])),
        *((f"{field.title()} accuracy", _percent(measures["accuracy"][field]["accuracy"])) for field in FIELDS),
        ("Category macro precision", _percent(measures["category"]["macro_precision"])),
        ("Category macro recall", _percent(measures["category"]["macro_recall"])),
        ("Key-feature overlap (Jaccard)", _percent(measures["key_features"]["mean_jaccard"])),
        (
            "Usable without edits",
            f"{_percent(feedback['share'])} of {feedback['with_feedback']} reviewed",
        ),
        ("Model time p50 / p90 / p95", _seconds(measures["latency_s"]["inference"])),
        ("Queue time p50 / p90 / p95", _seconds(measures["latency_s"]["queue"])),
    ]
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>" for name, value in summary
    )
    charts = "".join(
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{png}"></figure>'
        for alt, png in _charts(measures)
    )
    missing = ", ".join(html.escape(key) for key in items["missing"][:50]) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>vlmq evaluation: {html.escape(title)}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}}
img{{max-width:100%}}</style></head>
<body><h1>How right is the output?</h1><p>{html.escape(title)}</p>
<table id="summary">{rows}</table>
<p>Missing or failed: {missing}</p>
{charts}
<details><summary>All numbers (JSON)</summary><pre>{html.escape(json.dumps(measures, indent=2))}</pre></details>
</body></html>
"""


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _seconds(summary: dict[str, Any]) -> str:
    if not summary["count"]:
        return "n/a"
    return " / ".join(f"{summary[f'p{p}']:.2f} s" for p in (50, 90, 95))


def _charts(measures: dict[str, Any]) -> list[tuple[str, str]]:
    """(alt text, base64 PNG) of each chart; matplotlib without a display."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    charts = []
    names = [*(field.title() for field in FIELDS), "Key features", "Usable"]
    values = [
        *(measures["accuracy"][field]["accuracy"] or 0 for field in FIELDS),
        measures["key_features"]["mean_jaccard"] or 0,
        measures["feedback"]["share"] or 0,
    ]
    figure, axes = pyplot.subplots(figsize=(6, 3))
    axes.bar(names, [value * 100 for value in values], color="#0b57d0")
    axes.set_ylim(0, 100)
    axes.set_ylabel("%")
    axes.set_title("Accuracy, key-feature overlap, usable without edits")
    charts.append(("accuracy per field", _png(figure, pyplot)))

    category = measures["category"]
    if category["classes"]:
        size = max(3.0, 0.6 * len(category["classes"]) + 2)
        figure, axes = pyplot.subplots(figsize=(size, size))
        axes.imshow(category["confusion"], cmap="Blues")
        axes.set_xticks(range(len(category["classes"])), category["classes"], rotation=45, ha="right")
        axes.set_yticks(range(len(category["classes"])), category["classes"])
        axes.set_xlabel("model output")
        axes.set_ylabel("label")
        for row, counts in enumerate(category["confusion"]):
            for column, count in enumerate(counts):
                axes.text(column, row, str(count), ha="center", va="center")
        axes.set_title("Category confusion matrix")
        charts.append(("category confusion matrix", _png(figure, pyplot)))

    latency = measures["latency_s"]
    if latency["inference"]["count"]:
        figure, axes = pyplot.subplots(figsize=(6, 3))
        labels = [f"p{p}" for p in (50, 90, 95)]
        axes.bar([f"model {label}" for label in labels], [latency["inference"][label] for label in labels])
        axes.bar([f"queue {label}" for label in labels], [latency["queue"][label] or 0 for label in labels])
        axes.set_ylabel("seconds")
        axes.tick_params(axis="x", rotation=30)
        axes.set_title("Latency percentiles")
        charts.append(("latency percentiles", _png(figure, pyplot)))
    return charts


def _png(figure: Any, pyplot: Any) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    pyplot.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
