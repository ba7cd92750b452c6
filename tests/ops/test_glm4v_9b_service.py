"""The whole service on GLM-4V-9B's original checkpoint layout: `vlmq up` with `VLMQ_MODEL` pointing at the
reference folder (tiny random weights, no remote code). The worker runs the family in the batching loop (the
default engine for a family with batch kernels); one job per task, all submitted at once, succeeds, and an OpenAI
chat call on a golden case, greedy with 24 tokens, answers what the original model answered, streamed or not."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.support.glm4v_9b_reference import case, reference_dir
from tests.support.helpers import data_uri
from tests.support.live_service import vlmq_up
from worker.inference.engine import clean_output
from worker.inference.families.glm4v_9b.tokenizer import load_tokenizer
from worker.inference.redaction import redact_text

JOBS: list[dict[str, Any]] = [
    {"task": "describe"},
    {"task": "ocr"},
    {"task": "attributes", "params": {"max_new_tokens": 512}},
    {"task": "copy", "params": {"channel": "selling_points"}},
    {
        "task": "ask",
        "prompt": "Which corner is the brightest?",
        "params": {"history": [{"role": "user", "text": "Colours?"}, {"role": "assistant", "text": "Red."}]},
    },
]


def wait_for(job_url: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (job := requests.get(job_url, timeout=5).json())["status"] not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, f"job not done within {timeout_s} s: {job}"
        time.sleep(0.2)
    return job


def golden_answer(name: str) -> str:
    """The original model's greedy continuation as the service shows it (special tokens and PII removed)."""
    tokenizer = load_tokenizer(str(reference_dir()))
    hidden = {*tokenizer.all_special_tokens, *(t.content for t in tokenizer.added_tokens_decoder.values())}
    return redact_text(clean_output(case(name)["greedy"]["text"], hidden))[0]


@pytest.mark.slow
def test_vlmq_up_runs_every_task_and_chat_on_glm4v_9b(tmp_path: Path, model_data_dir: Path) -> None:
    reference = reference_dir()
    photo = (reference / "images/shapes.png").read_bytes()
    overrides = {"model": str(reference), "quantization": "fp32", "device": "cpu", "repetition_penalty": "1.0"}
    with vlmq_up(tmp_path, model_data_dir, **overrides) as (url, _):
        urls = []
        for job in JOBS:
            fields = {key: json.dumps(value) if key == "params" else value for key, value in job.items()}
            created = requests.post(f"{url}/v1/jobs", files={"image": photo}, data=fields, timeout=10)
            assert created.status_code == 202, created.text
            urls.append(created.json()["urls"]["self"])
        for job, job_url in zip(JOBS, urls, strict=True):
            done = wait_for(job_url, 120)
            assert done["status"] == "succeeded", done
            assert done["result"]["usage"]["completion_tokens"] > 0
            assert done["model"] == str(reference)
            if job["task"] == "attributes":
                assert set(done["result"]["data"]) >= {"category", "color", "material"}
        assert re.search(r"batching \d+ sequences", (tmp_path / "up.log").read_text())

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_uri(photo)}},
                    {"type": "text", "text": "Describe this image in detail."},
                ],
            }
        ]
        answer = client.chat.completions.create(model="any", messages=messages, temperature=0, max_tokens=24)
        assert answer.choices[0].message.content == golden_answer("describe")
        assert answer.usage.completion_tokens == 24
        stream = client.chat.completions.create(
            model="any", messages=messages, temperature=0, max_tokens=24, stream=True
        )
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert streamed == golden_answer("describe")
