"""How right the `attributes` output is, measured against a person's labels.

Labels and results are matched by SKU when both have one, else by file name. Every
measure says what it is computed over:

- accuracy of `category`, `color` and `material`: exact matches after case folding and
  trimming, over the labelled photos that have a succeeded result and a label for that
  field; photos without a succeeded result are counted as `missing`, not as wrong;
- category precision and recall per class and their macro averages, and the confusion
  matrix (rows: labels, columns: outputs);
- key-feature overlap: the mean Jaccard index of the labelled and the output feature sets;
- usable without edits: the share of results with feedback whose newest feedback scored
  4 or 5 and corrected nothing (from every result, labelled or not);
- latency: nearest-rank percentiles of the seconds in the model and in the queue, over
  succeeded results.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from shared.feedback import is_usable

FIELDS = ("category", "color", "material")
PERCENTILES = (50, 90, 95)
DIGITS = 4
_FEATURE_SPLIT = re.compile(r"[;|\n]")


class LabelsError(ValueError):
    """A labels table that cannot be used, with the reason."""


def evaluate(labels: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The measures above for flat result rows (`shared.result_rows.flat_result`) against label rows."""
    if not labels:
        raise LabelsError("the labels table has no rows")
    if not any(key in labels[0] for key in ("sku", "name")):
        raise LabelsError(f"the labels need a 'sku' or 'name' column; they have {', '.join(labels[0]) or 'none'}")
    by_sku = {_text(row.get("sku")): row for row in results if _text(row.get("sku"))}
    by_name = {_text(row.get("name")): row for row in results if _text(row.get("name"))}
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    missing: list[str] = []
    for label in labels:
        sku, name = _text(label.get("sku")), _text(label.get("name"))
        result = (by_sku.get(sku) if sku else None) or (by_name.get(name) if name else None)
        if result is None or result.get("status") != "succeeded":
            missing.append(str(label.get("sku") or label.get("name")))
        else:
            pairs.append((label, result))
    return {
        "items": {"labelled": len(labels), "with_output": len(pairs), "missing": missing},
        "accuracy": {field: _accuracy(pairs, field) for field in FIELDS},
        "category": _category(pairs),
        "key_features": _key_features(pairs),
        "feedback": _feedback(results),
        "latency_s": {
            "inference": _percentiles(results, "inference_s"),
            "queue": _percentiles(results, "queue_s"),
        },
    }


def _text(value: Any) -> str:
    """Normalised for comparison: case-folded, trimmed, inner whitespace collapsed."""
    return " ".join(str(value).split()).casefold() if value not in (None, "") else ""


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, DIGITS) if whole else None


def _accuracy(pairs: list[tuple[dict[str, Any], dict[str, Any]]], field: str) -> dict[str, Any]:
    judged = [(label, result) for label, result in pairs if _text(label.get(field))]
    correct = sum(_text(label[field]) == _text(result.get(field)) for label, result in judged)
    return {"correct": correct, "judged": len(judged), "accuracy": _ratio(correct, len(judged))}


def _category(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    judged = [
        (_text(label["category"]), _text(result.get("category")) or "(none)")
        for label, result in pairs
        if _text(label.get("category"))
    ]
    classes = sorted({truth for truth, _ in judged} | {output for _, output in judged})
    counts = Counter(judged)
    matrix = [[counts[(truth, output)] for output in classes] for truth in classes]
    labelled_classes = sorted({truth for truth, _ in judged})
    precision = {c: _ratio(counts[(c, c)], sum(counts[(t, c)] for t in classes)) for c in labelled_classes}
    recall = {c: _ratio(counts[(c, c)], sum(counts[(c, o)] for o in classes)) for c in labelled_classes}
    return {
        "classes": classes,
        "confusion": matrix,
        "precision": precision,
        "recall": recall,
        "macro_precision": _mean([value for value in precision.values() if value is not None]),
        "macro_recall": _mean([value for value in recall.values() if value is not None]),
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), DIGITS) if values else None


def _features(value: Any) -> set[str]:
    parts = value if isinstance(value, list) else _FEATURE_SPLIT.split(str(value or ""))
    return {text for part in parts if (text := _text(part))}


def _key_features(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    scores = []
    for label, result in pairs:
        truth = _features(label.get("key_features"))
        if truth:
            output = _features(result.get("key_features"))
            scores.append(len(truth & output) / len(truth | output))
    return {"judged": len(scores), "mean_jaccard": _mean(scores)}


def _corrections(value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.strip():
        parsed = json.loads(value)
        return parsed if isinstance(parsed, dict) else {}
    return value if isinstance(value, dict) else {}


def _feedback(results: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [row for row in results if row.get("feedback_score") not in (None, "")]
    usable = sum(
        is_usable(int(float(row["feedback_score"])), _corrections(row.get("feedback_corrections"))) for row in scored
    )
    return {"with_feedback": len(scored), "usable_without_edits": usable, "share": _ratio(usable, len(scored))}


def _percentiles(results: list[dict[str, Any]], column: str) -> dict[str, Any]:
    values = sorted(
        float(row[column]) for row in results if row.get("status") == "succeeded" and row.get(column) not in (None, "")
    )
    summary: dict[str, Any] = {"count": len(values)}
    for p in PERCENTILES:
        summary[f"p{p}"] = values[math.ceil(p / 100 * len(values)) - 1] if values else None
    summary["max"] = values[-1] if values else None
    return summary
