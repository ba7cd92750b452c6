"""People's feedback on jobs: a 1-5 score, corrected fields and a comment.

A job may get feedback many times (a second reviewer, a changed mind); the newest one
counts everywhere it is shown, exported or measured. An output is "usable without
edits" when its newest feedback scores 4 or 5 and corrects nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.job_view import Timestamp, iso_utc, render
from shared.models import Feedback

MAX_COMMENT_CHARS = 2000
MAX_CORRECTIONS_BYTES = 16 * 1024
USABLE_MIN_SCORE = 4


class FeedbackCreate(BaseModel):
    """The body of `POST /v1/jobs/{id}/feedback`."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5, strict=True, description="1 (useless) to 5 (publish as is)")
    corrections: dict[str, Any] = Field(
        default_factory=dict, description="the fields a person corrected, with the right values (e.g. color)"
    )
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)

    @field_validator("corrections")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_CORRECTIONS_BYTES:
            raise ValueError(f"corrections must be at most {MAX_CORRECTIONS_BYTES} bytes of JSON")
        return value


def is_usable(score: int, corrections: dict[str, Any]) -> bool:
    """Whether a person accepted the output unchanged."""
    return score >= USABLE_MIN_SCORE and not corrections


class FeedbackView(BaseModel):
    """One feedback as the API, the pages and batch results show it (the OpenAPI document uses this model too)."""

    id: str
    job_id: str
    score: int = Field(ge=1, le=5)
    corrections: dict[str, Any]
    comment: str | None
    usable_without_edits: bool = Field(description="score 4 or 5 and no corrections")
    created_at: Timestamp


def feedback_view(feedback: Feedback) -> FeedbackView:
    return FeedbackView(
        id=feedback.id,
        job_id=feedback.job_id,
        score=feedback.score,
        corrections=feedback.corrections,
        comment=feedback.comment,
        usable_without_edits=is_usable(feedback.score, feedback.corrections),
        created_at=iso_utc(feedback.created_at),
    )


def feedback_to_dict(feedback: Feedback) -> dict[str, Any]:
    """Render a feedback row (see `FeedbackView`)."""
    return render(feedback_view(feedback))


def latest_feedback(session: Session, job_ids: Iterable[str]) -> dict[str, Feedback]:
    """The newest feedback of each job that has any (ids sort by creation time)."""
    ids = list(job_ids)
    newest: dict[str, Feedback] = {}
    if not ids:
        return newest
    for feedback in session.scalars(select(Feedback).where(Feedback.job_id.in_(ids)).order_by(Feedback.id)):
        newest[feedback.job_id] = feedback
    return newest
