"""Issue 13's promise through the whole service: with the defaults `vlmq up` runs (placeholder model,
default attributes budget, sampling), every one of 50 `attributes` jobs ends with schema-valid data.

Fifty constrained generations take minutes on CPU, so this lives here rather than in the test suite
(`tests/inference/test_attributes.py` keeps the same property on a dozen answers of the engine).
Starts `vlmq up` on a free port with a temporary data dir (it builds the placeholder checkpoint),
submits the jobs over HTTP with the worker's own defaults (no `max_new_tokens` or sampling override),
and writes `$OUT/attributes_validity.json` (or prints it); exits 1 when any job fails or is invalid.

    PYTHONPATH=. .venv/bin/python bench/attributes_validity.py
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonschema
import requests
from PIL import Image

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from vlmq.redis_server import free_port

JOBS = 50
FLAT = {
    "type": "object",
    "properties": {
        "brand": {"type": "string", "minLength": 1},  # no maxLength: the guard cuts it off in time
        "size": {"enum": ["S", "M", "L", "XL"]},
        "price": {"type": "integer", "minimum": 0, "maximum": 100000},
        "waterproof": {"type": "boolean"},
    },
    "required": ["brand", "size", "price", "waterproof"],
}
NESTED = {
    "type": "object",
    "properties": {
        "variants": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"color": {"type": "string", "maxLength": 20}, "stock": {"type": "integer"}},
                "required": ["color", "stock"],
            },
        },
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 6},
    },
    "required": ["variants", "tags"],
}


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 64).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def wait_for_ready(log: Path, timeout_s: float) -> str:
    """The URL `vlmq up` prints once the web server and the worker are up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := re.search(r"ready at (\S+)", log.read_text()):
            return found.group(1)
        time.sleep(0.5)
    raise SystemExit(f"vlmq up was not ready in {timeout_s} s:\n{log.read_text()[-3000:]}")


def run_jobs(url: str) -> dict[str, Any]:
    image = photo()
    schemas = [None, FLAT, NESTED]
    jobs: dict[str, dict[str, Any]] = {}
    for index in range(JOBS):
        schema = schemas[index % 3]
        fields = {"task": "attributes"} | ({} if schema is None else {"params": json.dumps({"schema": schema})})
        response = requests.post(f"{url}/v1/jobs", data=fields, files={"image": ("photo.png", image)}, timeout=30)
        response.raise_for_status()
        jobs[response.json()["id"]] = schema or DEFAULT_PRODUCT_SCHEMA
    outcomes: list[dict[str, Any]] = []
    deadline = time.monotonic() + 600
    while jobs and time.monotonic() < deadline:
        for job_id in list(jobs):
            job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=30).json()
            if job["status"] not in ("succeeded", "failed", "canceled"):
                continue
            schema = jobs.pop(job_id)
            outcome = {"id": job_id, "status": job["status"], "error": job.get("error")}
            if job["status"] == "succeeded":
                try:
                    jsonschema.validate(job["result"]["data"], schema)
                    outcome["valid"] = True
                except jsonschema.ValidationError as exc:
                    outcome["valid"], outcome["error"] = False, exc.message
                outcome["completion_tokens"] = job["result"]["usage"]["completion_tokens"]
            outcomes.append(outcome)
        time.sleep(0.5)
    valid = sum(1 for outcome in outcomes if outcome.get("valid"))
    return {"jobs": JOBS, "valid": valid, "unfinished": len(jobs), "outcomes": outcomes}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vlmq-attributes-") as workdir:
        log = Path(workdir) / "up.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VLMQ_")}
        # The 50 submissions go out back to back: above the default per-tenant rate limit.
        env |= {"VLMQ_DATA_DIR": str(Path(workdir) / "data"), "VLMQ_RATE_LIMIT": "1000/second", "PYTHONUNBUFFERED": "1"}
        vlmq = str(Path(sys.executable).with_name("vlmq"))
        with log.open("w") as output:
            up = subprocess.Popen([vlmq, "up", "--port", str(free_port())], env=env, stdout=output, stderr=output)
        try:
            report = run_jobs(wait_for_ready(log, 300))
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(60)
    text = json.dumps(report, indent=2)
    if out := os.environ.get("OUT"):
        (Path(out) / "attributes_validity.json").write_text(text)
    print(text if not out else f"valid {report['valid']}/{report['jobs']}")
    return 0 if report["valid"] == JOBS else 1


if __name__ == "__main__":
    raise SystemExit(main())
