"""The list responses of the vlmq API: pages of jobs and batches, a job's deliveries and feedback."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.batch_view import BatchView
from shared.feedback import FeedbackView
from shared.job_view import JobView
from shared.webhooks.delivery_log import DeliveryView


class JobPage(BaseModel):
    """Jobs, newest first; pass `next_cursor` as `cursor` for the next page."""

    data: list[JobView]
    has_more: bool
    next_cursor: str | None


class BatchPage(BaseModel):
    """Batches, newest first; pass `next_cursor` as `cursor` for the next page."""

    data: list[BatchView]
    has_more: bool
    next_cursor: str | None


class DeliveryList(BaseModel):
    data: list[DeliveryView] = Field(description="oldest first")


class FeedbackList(BaseModel):
    data: list[FeedbackView] = Field(description="newest first")
