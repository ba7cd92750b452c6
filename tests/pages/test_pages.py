"""The HTML pages in headless Chromium, against a live server and the real runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.after_commit import row_id_of_task
from shared.celery_app import GPU_QUEUE
from shared.settings import Settings
from tests.support.factories import api_key
from tests.support.helpers import data_uri, image_bytes, submit
from tests.support.services import serving
from web.app import create_app
from worker.context import WorkerContext
from worker.runner import run_job


def _run_next_job(broker: redis.Redis, context: WorkerContext) -> None:
    _, raw = broker.blpop([GPU_QUEUE], timeout=30)
    run_job(context, row_id_of_task(json.loads(raw)["headers"]["id"]))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_upload_form_leads_to_a_page_that_follows_the_job(
    live_url: str, browser_page, broker: redis.Redis, worker_context: WorkerContext, tmp_path: Path
) -> None:
    page = browser_page
    photo = tmp_path / "bag.png"
    photo.write_bytes(image_bytes(size=(200, 160), color="green"))
    page.goto(live_url + "/")
    assert "noise" in page.inner_text("#placeholder-warning")
    page.set_input_files("#image", str(photo))
    page.select_option("#task", "describe")
    page.click("button[type=submit]")
    page.wait_for_url("**/jobs/job_*")
    assert page.inner_text("#job-status") == "queued"
    assert "refreshes" in page.content()
    _run_next_job(broker, worker_context)
    page.wait_for_selector("#job-status.status-succeeded", timeout=15_000)
    assert page.inner_text("#job-result").strip() != ""
    assert "refreshes" not in page.content()  # a finished job's page stops refreshing
    page.screenshot(path=str(tmp_path / "job.png"))
    page.goto(live_url + "/")
    assert page.inner_text("#recent-jobs").count("succeeded") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_upload_form_shows_the_api_error(live_url: str, browser_page, tmp_path: Path) -> None:
    page = browser_page
    photo = tmp_path / "bag.png"
    photo.write_bytes(image_bytes())
    page.goto(live_url + "/")
    page.set_input_files("#image", str(photo))
    page.select_option("#task", "ask")
    page.click("button[type=submit]")
    page.wait_for_selector("#upload-error:not([hidden])")
    assert "needs a prompt" in page.inner_text("#upload-error")
    assert page.url == live_url + "/"


@pytest.fixture
def auth_live_url(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"auth_enabled": True}))
    with serving(app) as url:
        yield url
    app.extensions["vlmq"].engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pages_with_auth_ask_for_a_key_and_hide_other_tenants(
    auth_live_url: str, browser_page, sessions: sessionmaker[Session], client: FlaskClient, png: bytes
) -> None:
    key = api_key(sessions, "shop-a")
    other_tenants_job = submit(client, png, task="describe").get_json()["id"]  # the default tenant's
    page = browser_page
    response = page.goto(auth_live_url + "/")
    assert response.status == 401
    assert "Bearer" in page.inner_text("#page-error")
    page.fill("#api-key", key)
    page.click("#key-form button")
    page.wait_for_selector("#upload-form")
    response = page.goto(f"{auth_live_url}/jobs/{other_tenants_job}")
    assert response.status == 404
    assert other_tenants_job in page.inner_text("#page-error")
    assert "<html" in page.content()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_home_page_pages_back_through_older_jobs_and_batches(
    live_url: str, browser_page, client: FlaskClient, png: bytes
) -> None:
    one_photo = {"task": "describe", "items": [{"image": data_uri(png)}]}
    for _ in range(7):  # 7 batches of one photo: 7 more jobs
        assert client.post("/v1/batches", json=one_photo).status_code == 202
    for _ in range(25):
        assert submit(client, png, task="ocr").status_code == 202
    page = browser_page
    page.goto(live_url + "/")
    assert page.locator("#recent-jobs .job-row").count() == 20
    assert page.locator("#recent-batches tr").count() == 1 + 5
    page.click("#older-jobs")
    assert page.locator("#recent-jobs .job-row").count() == 12 and page.locator("#older-jobs").count() == 0
    page.click("#newest")
    page.click("#older-batches")
    assert page.locator("#recent-batches tr").count() == 1 + 2 and page.locator("#older-batches").count() == 0
    page.goto(live_url + "/?task=ocr")
    page.click("#older-jobs")  # the filter is kept
    assert page.locator("#recent-jobs .job-row").count() == 5
    assert "task=ocr" in page.url
