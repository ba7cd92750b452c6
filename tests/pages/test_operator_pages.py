"""The operator pages in headless Chromium against a live server: batch upload, thumbnails, downloads,
cancel, retry, feedback, copy, filters, on a desktop and a phone-sized screen (screenshots kept)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from tests.support.browser import PHONE
from tests.support.catalogue import catalogue, write_photos
from tests.support.helpers import finish, submit

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _all_thumbnails_loaded(page) -> bool:
    return page.eval_on_selector_all("img.thumb", "images => images.every(i => i.complete && i.naturalWidth > 0)")


def test_batch_upload_follows_the_run_and_downloads_every_format(
    live_url: str, browser_page, gpu_thread: None, tmp_path: Path, screenshots: Path
) -> None:
    photos = catalogue(3)
    write_photos(tmp_path / "photos", photos, side=48)
    page = browser_page
    page.goto(live_url + "/")
    page.set_input_files("#batch-images", [str(tmp_path / "photos" / photo.name) for photo in photos])
    page.select_option("#batch-task", "describe")
    page.click("#batch-form button[type=submit]")
    page.wait_for_url("**/batches/bat_*")
    page.wait_for_selector("#batch-status.status-completed", timeout=60_000)
    names = page.locator("#batch-jobs td:nth-child(3)").all_inner_texts()
    assert names == [photo.name for photo in photos]
    assert page.locator("#batch-jobs .status-succeeded").count() == 3
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    assert _all_thumbnails_loaded(page)  # served by the API to this tenant
    page.screenshot(path=str(screenshots / "batch-desktop.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#download-xlsx")
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert [row[2] for row in rows[1:]] == [photo.name for photo in photos]
    with page.expect_download() as download:
        page.click("#download-csv")
    assert Path(download.value.path()).read_bytes().startswith(b"\xef\xbb\xbf")
    with page.expect_download() as download:
        page.click("#download-jsonl")
    lines = Path(download.value.path()).read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["succeeded"] * 3

    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing sticks out sideways
    page.screenshot(path=str(screenshots / "batch-phone.png"), full_page=True)


def test_job_page_cancels_retries_and_takes_feedback(
    live_url: str, browser_page, client: FlaskClient, png: bytes, screenshots: Path
) -> None:
    job_id = submit(client, png, task="describe", metadata=json.dumps({"sku": "SKU-77"})).get_json()["id"]
    page = browser_page
    page.goto(f"{live_url}/jobs/{job_id}")
    assert page.inner_text("#job-sku") == "SKU-77"
    page.click("#cancel-button")
    page.wait_for_selector("#job-status.status-canceled")
    page.click("#retry-button")
    page.wait_for_url(lambda url: "/jobs/job_" in url and job_id not in url)
    assert page.inner_text("#job-status") == "queued"
    retried = page.url.rsplit("/", 1)[1]
    assert client.get(f"/v1/jobs/{retried}").get_json()["metadata"] == {"sku": "SKU-77"}
    page.click("#cancel-button")  # the retry is queued: cancel it too, and retrying a running job is refused
    page.wait_for_selector("#job-status.status-canceled")


def test_attributes_are_shown_copied_and_corrected(
    live_url: str, browser_page, client: FlaskClient, sessions: sessionmaker[Session], screenshots: Path
) -> None:
    photo = catalogue(1)[0]
    fields = {"task": "attributes", "metadata": json.dumps({"sku": photo.sku})}
    job_id = submit(client, photo.png(200), **fields).get_json()["id"]
    data = {"category": "shoes", "color": "blue", "material": "leather", "key_features": ["lace-up", "rubber sole"]}
    finish(sessions, job_id, json.dumps(data), data)
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"{live_url}/jobs/{job_id}")
    assert page.get_attribute("#job-photo", "src").endswith("?size=thumb")
    assert page.evaluate("document.getElementById('job-photo').naturalWidth") > 0
    assert page.inner_text("#job-attributes [data-field=color]") == "blue"
    assert page.locator("#job-attributes [data-field=key_features] li").all_inner_texts() == ["lace-up", "rubber sole"]
    page.click("#copy-button")
    page.wait_for_selector("#copy-done:not([hidden])")
    assert page.evaluate("navigator.clipboard.readText()").splitlines()[:2] == ["Category: shoes", "Color: blue"]

    page.select_option("#feedback-score", "3")
    page.fill("#correct-color", "red")
    page.fill("#feedback-comment", "the shoe is red")
    page.click("#feedback-form button[type=submit]")
    page.wait_for_selector("#job-feedback")
    assert "color: red" in page.inner_text("#job-feedback")
    saved = client.get(f"/v1/jobs/{job_id}/feedback").get_json()["data"][0]
    assert (saved["score"], saved["corrections"], saved["comment"]) == (3, {"color": "red"}, "the shoe is red")
    page.screenshot(path=str(screenshots / "job-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(screenshots / "job-phone.png"), full_page=True)


def test_index_filters_by_status_and_task_and_finds_skus(
    live_url: str, browser_page, client: FlaskClient, png: bytes, screenshots: Path
) -> None:
    for sku, task in (("AB-1", "describe"), ("AB-2", "ocr"), ("ZZ-3", "describe")):
        submit(client, png, task=task, metadata=json.dumps({"sku": sku}))
    page = browser_page
    page.goto(live_url + "/")
    assert page.locator("#recent-jobs .sku").all_inner_texts() == ["ZZ-3", "AB-2", "AB-1"]
    page.fill("#filter-q", "ab-")
    page.click("#job-filters button")
    page.wait_for_url("**/?*q=ab-*")
    assert page.locator("#recent-jobs .sku").all_inner_texts() == ["AB-2", "AB-1"]
    page.select_option("#filter-task", "describe")
    page.click("#job-filters button")
    page.wait_for_url("**/?*task=describe*")
    assert page.locator("#recent-jobs .sku").all_inner_texts() == ["AB-1"]
    page.select_option("#filter-status", "succeeded")
    page.click("#job-filters button")
    page.wait_for_selector("#no-jobs")
    assert page.wait_for_function("() => [...document.images].every(i => i.complete)")
    page.goto(live_url + "/")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    assert _all_thumbnails_loaded(page)
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(screenshots / "index-phone.png"), full_page=True)
    bad = page.goto(live_url + "/?task=paint")
    assert bad.status == 400 and "task must be one of" in page.inner_text("#page-error")
