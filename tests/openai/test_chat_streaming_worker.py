"""Streamed chat through the real worker: the engine's text reaches the OpenAI client while the job runs."""

from __future__ import annotations

import openai
import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job
from tests.support.helpers import data_uri, wait_for_only_job


@pytest.mark.usefixtures("gpu_thread")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_generated_text_streams_before_the_job_ends(
    openai_client: openai.OpenAI, sessions: sessionmaker[Session], png: bytes
) -> None:
    parts = [{"type": "text", "text": "Describe it."}, {"type": "image_url", "image_url": {"url": data_uri(png)}}]
    stream = openai_client.chat.completions.create(
        model="any", messages=[{"role": "user", "content": parts}], stream=True, max_tokens=600, temperature=0
    )
    job = wait_for_only_job(sessions)
    pieces: list[str] = []
    running_when_first_piece = None
    for chunk in stream:
        content = chunk.choices[0].delta.content if chunk.choices else None
        if content and running_when_first_piece is None:
            with sessions() as session:
                running_when_first_piece = session.get_one(Job, job.id).status == "running"
        pieces.append(content or "")
    assert running_when_first_piece, "no text arrived before the job ended"
    with sessions() as session:
        finished = session.get_one(Job, job.id)
    assert finished.status == "succeeded"
    assert "".join(pieces) == finished.result["text"]  # streamed pieces plus the held-back tail: the answer
