"""The batch page in headless Chromium: progress that follows the real runner, links both ways."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from tests.support.helpers import data_uri, image_bytes
from worker.context import WorkerContext
from worker.runner import run_job


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_batch_page_follows_the_batch_and_links_its_jobs(
    live_url: str,
    browser_page,
    client: FlaskClient,
    worker_context: WorkerContext,
) -> None:
    items = [{"image": data_uri(image_bytes(color=color))} for color in ("red", "green")]
    batch = client.post("/v1/batches", json={"task": "describe", "items": items}).get_json()
    lines = client.get(f"/v1/batches/{batch['id']}/results").get_data(as_text=True).splitlines()
    first, second = (json.loads(line)["job_id"] for line in lines)

    page = browser_page
    page.goto(f"{live_url}/batches/{batch['id']}")
    assert "noise" in page.inner_text("#placeholder-warning")  # as on the home page: no model is set
    assert page.inner_text("#batch-status") == "running"
    assert "queued 2" in page.inner_text("#batch-counts")
    assert page.get_attribute("#batch-progress", "value") == "0.0"
    assert "refreshes" in page.content()
    job_links = page.locator("#batch-jobs td:nth-child(3) a")
    assert [job_links.nth(i).inner_text() for i in range(job_links.count())] == [first, second]

    assert run_job(worker_context, first) == "succeeded"
    page.wait_for_selector("#batch-counts:has-text('succeeded 1')", timeout=15_000)
    assert page.get_attribute("#batch-progress", "value") == "0.5"
    assert run_job(worker_context, second) == "succeeded"
    page.wait_for_selector("#batch-status.status-completed", timeout=15_000)
    assert "refreshes" not in page.content()  # a completed batch's page stops refreshing
    assert "100.0 % of 2 jobs finished" in page.inner_text("body")

    page.click(f"#batch-jobs a:has-text('{second}')")
    page.wait_for_url(f"**/jobs/{second}")
    assert page.inner_text("#job-status") == "succeeded"
    page.click("#job-batch")
    page.wait_for_url(f"**/batches/{batch['id']}")
    missing = page.goto(f"{live_url}/batches/bat_nope")
    assert missing.status == 404 and "bat_nope" in page.inner_text("#page-error")
