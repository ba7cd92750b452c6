"""The catalogue workflow from the command line against a live `vlmq up` on the tiny model: 200 photos
end to end with an interrupted run resumed, exports in every format, feedback, `vlmq eval`, and
`vlmq submit`'s exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openpyxl import load_workbook

from tests.support.catalogue import catalogue, write_photos
from tests.support.live_service import VLMQ, vlmq_env, vlmq_process, vlmq_up, wait_for_line
from vlmq.result_files import write_rows
from worker.inference.engine_contract import Engine

PHOTOS = 200
CHUNK = 50
# Two new tokens per photo: the run measures the plumbing, not the (noise) text.
RUN = ["--task", "describe", "--param", "max_new_tokens=2", "--chunk-size", str(CHUNK)]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model_data_dir: Path, engine: Engine) -> Iterator[str]:
    # Fast heartbeats: a canceled job stops (and frees its slot) within half a second. A short sequence
    # limit gives a job that fails in the worker: one whose budget does not fit it. The CLI polls in tight loops.
    live_dir = tmp_path_factory.mktemp("live")
    overrides = {"heartbeat_interval_s": "0.5", "gpu_max_seq_tokens": "1024", "rate_limit": "1000/second"}
    with vlmq_up(live_dir, model_data_dir, **overrides) as (url, _):
        yield url


def cli(*args: str, url: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VLMQ, *args, "--url", url], env=vlmq_env(), capture_output=True, text=True, timeout=timeout_s
    )


def test_a_folder_of_200_photos_runs_resumes_exports_and_evaluates(live: str, tmp_path: Path) -> None:
    photos = catalogue(PHOTOS)
    folder = tmp_path / "photos"
    write_photos(folder, photos)
    out = tmp_path / "results.xlsx"

    # A first run, interrupted (Ctrl-C) as soon as its first batch is on the server.
    log = tmp_path / "first.log"
    command = [VLMQ, "batch", "run", str(folder), *RUN, "--out", str(out), "--url", live]
    with log.open("w") as output, vlmq_process(command, vlmq_env(), output) as first:
        wait_for_line(log, r"batch bat_\w+: 50 photos sent", 60)
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 130
    assert "run the same command again to resume" in log.read_text()

    # The same command again sends only what the first run had not, then waits with progress.
    rerun = cli("batch", "run", str(folder), *RUN, "--out", str(out), url=live, timeout_s=600)  # a slow machine
    assert rerun.returncode == 0, rerun.stderr
    assert f"{PHOTOS} photos in 4 batches" in rerun.stderr
    assert "already sent" in rerun.stderr  # at least the batch the first run got through
    assert f"{PHOTOS}/{PHOTOS} photos finished" in rerun.stderr and "/s" in rerun.stderr
    batches = requests.get(f"{live}/v1/batches", timeout=10).json()["data"]
    assert len(batches) == 4 and sum(batch["total"] for batch in batches) == PHOTOS  # nothing sent twice

    sheet = load_workbook(out).active
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert header[:3] == ("name", "sku", "status")
    assert [(row["name"], row["sku"], row["status"]) for row in body] == [
        (photo.name, photo.sku, "succeeded") for photo in photos
    ]
    assert len(load_workbook(tmp_path / "results.errors.xlsx").active["A"]) == 1  # the header only

    # People review four outputs: three are usable as they are, one needed a correction.
    job_ids = [row["job_id"] for row in body[:4]]
    for job_id, score, corrections in zip(job_ids, (5, 4, 5, 2), ({}, {}, {}, {"category": "bag"}), strict=True):
        response = requests.post(
            f"{live}/v1/jobs/{job_id}/feedback", json={"score": score, "corrections": corrections}, timeout=10
        )
        assert response.status_code == 201, response.text

    # Every format, read back with its reader; these runs resend nothing either.
    for suffix in (".csv", ".jsonl"):
        again = cli("batch", "run", str(folder), *RUN, "--out", str(tmp_path / f"results{suffix}"), url=live)
        assert again.returncode == 0 and "(4 already sent by an earlier run)" in again.stderr, again.stderr
    csv_bytes = (tmp_path / "results.csv").read_bytes()
    assert csv_bytes.startswith(b"\xef\xbb\xbf")
    jsonl = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [row["sku"] for row in jsonl] == [photo.sku for photo in photos]
    assert jsonl[3]["feedback_corrections"] == {"category": "bag"}
    assert requests.get(f"{live}/v1/batches", timeout=10).json()["data"][0]["total"] == CHUNK

    labels = tmp_path / "labels.csv"
    write_rows(labels, ("sku", "category", "color", "material", "key_features"), [p.label for p in photos])
    report = tmp_path / "report.html"
    evaluated = subprocess.run(
        [VLMQ, "eval", str(labels), "--results", str(tmp_path / "results.csv"), "--report", str(report)],
        env=vlmq_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    measures = json.loads(evaluated.stdout)
    # Worked out by hand: `describe` gives no attributes, so nothing matches a label. Photo i is
    # shoes (i % 3 == 0: 67 photos), bag (67) or mug (66); every output falls in "(none)".
    assert measures["items"] == {"labelled": 200, "with_output": 200, "missing": []}
    assert measures["accuracy"]["category"] == {"correct": 0, "judged": 200, "accuracy": 0.0}
    assert measures["category"]["classes"] == ["(none)", "bag", "mug", "shoes"]
    assert measures["category"]["confusion"] == [[0, 0, 0, 0], [67, 0, 0, 0], [66, 0, 0, 0], [67, 0, 0, 0]]
    assert measures["category"]["recall"] == {"bag": 0.0, "mug": 0.0, "shoes": 0.0}
    assert measures["category"]["precision"] == {"bag": None, "mug": None, "shoes": None}
    assert measures["key_features"] == {"judged": 200, "mean_jaccard": 0.0}
    assert measures["feedback"] == {"with_feedback": 4, "usable_without_edits": 3, "share": 0.75}
    assert measures["latency_s"]["inference"]["count"] == 200
    assert 0 < measures["latency_s"]["inference"]["p50"] <= measures["latency_s"]["inference"]["p95"]
    assert report.read_text().count("data:image/png;base64,") == 3

    listed = cli("jobs", "--search", photos[7].sku, url=live)
    assert listed.returncode == 0 and photos[7].name in listed.stdout and "succeeded" in listed.stdout
    assert cli("batches", url=live).stdout.count("completed") == 4


def test_submit_exit_codes_say_how_the_job_ended(live: str, tmp_path: Path) -> None:
    photo = tmp_path / "mug.png"
    photo.write_bytes(catalogue(3)[2].png())

    titled = cli("submit", str(photo), "--task", "copy", "--param", "channel=title", "--wait", url=live)
    assert titled.returncode == 0, titled.stderr
    job = json.loads(titled.stdout)
    assert (job["status"], job["params"], job["name"]) == ("succeeded", {"channel": "title"}, "mug.png")
    assert "1/1 job finished" in titled.stderr  # progress while waiting

    # The photo alone takes 16 of the 1,024 positions, so 2,000 is refused at submit; 1,000 passes that estimate,
    # and the prompt's text makes the worker fail it.
    refused_long = cli("submit", str(photo), "--task", "describe", "--param", "max_new_tokens=2000", url=live)
    assert refused_long.returncode == 2 and "ask for at most 1008" in refused_long.stderr, refused_long.stderr
    too_long = cli("submit", str(photo), "--task", "describe", "--param", "max_new_tokens=1000", "--wait", url=live)
    assert too_long.returncode == 1
    assert json.loads(too_long.stdout)["status"] == "failed"
    assert "failed: input_too_long" in too_long.stderr

    long = ["--param", "max_new_tokens=800", "--param", "temperature=0", "--wait", "--timeout", "1"]
    still = cli("submit", str(photo), "--task", "describe", *long, url=live)
    assert still.returncode == 3, still.stderr
    assert "still" in still.stderr and json.loads(still.stdout)["status"] in ("queued", "running")
    requests.post(json.loads(still.stdout)["urls"]["cancel"], timeout=10)

    refused = cli("submit", str(photo), "--task", "ask", url=live)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "needs a prompt" in refused.stderr

    port = live.rsplit(":", 1)[1]
    down = cli("submit", str(photo), "--task", "describe", url=live.replace(port, "1"))
    assert down.returncode == 4
    assert down.stderr.strip().count("\n") == 0 and "cannot connect" in down.stderr  # one line, no traceback
