"""Issue 13's promise through the whole service: with the defaults `vlmq up` runs (tiny model,
default attributes budget, sampling), every `attributes` job ends with schema-valid data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
from flask.testing import FlaskClient

from shared.product_schema import DEFAULT_PRODUCT_SCHEMA
from shared.settings import Settings
from tests.support.helpers import submit
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process, wait_for_line
from worker.inference.engine_contract import Engine

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


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fifty_attributes_jobs_all_return_schema_valid_data(
    settings: Settings, client: FlaskClient, engine: Engine, png: bytes, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    with (
        log_path.open("w") as log,  # the worker's own defaults: no max_new_tokens or sampling override
        vlmq_process([VLMQ, "worker", "gpu"], vlmq_env(settings), log),
    ):
        wait_for_line(log_path, r"loaded in worker process", 120)
        schemas = [None, FLAT, NESTED]
        jobs = []
        for index in range(50):
            schema = schemas[index % 3]
            params = {} if schema is None else {"params": json.dumps({"schema": schema})}
            response = submit(client, png, task="attributes", **params)
            assert response.status_code == 202, response.get_json()
            jobs.append((response.get_json()["id"], schema or DEFAULT_PRODUCT_SCHEMA))
        deadline = time.monotonic() + 240
        pending = dict(jobs)
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} jobs unfinished\n{log_path.read_text()[-3000:]}"
            for job_id in list(pending):
                job = client.get(f"/v1/jobs/{job_id}").get_json()
                if job["status"] in ("succeeded", "failed", "canceled"):
                    assert job["status"] == "succeeded", job["error"]
                    jsonschema.validate(job["result"]["data"], pending.pop(job_id))
                    assert job["result"]["usage"]["completion_tokens"] <= 512
            time.sleep(0.5)
