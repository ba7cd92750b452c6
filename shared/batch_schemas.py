"""Request schemas of `POST /v1/batches`: fields shared by every item, and the items.

An item's own `prompt` replaces the shared one; its `params` and `metadata` are merged
key by key over the shared ones (the item's keys win). Each merged item is then checked
as a `JobCreate`, exactly like a single job.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.schemas import MAX_NAME_CHARS, MAX_PROMPT_CHARS, JobCreate, JobParams, SubmissionFields, check_metadata_size


class BatchItem(BaseModel):
    """One image of a JSON batch, with optional overrides of the shared fields."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, description="data:image/...;base64,")
    image_url: str | None = Field(None, description="http(s) URL, downloaded at submit time")
    name: str | None = Field(None, max_length=MAX_NAME_CHARS, description="the photo's file name, echoed in results")
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    params: JobParams | None = None
    metadata: dict[str, Any] | None = None

    _check_metadata = field_validator("metadata")(check_metadata_size)

    @model_validator(mode="after")
    def _one_image(self) -> BatchItem:
        if (self.image is None) == (self.image_url is None):
            raise ValueError("each item needs exactly one of 'image' (a data URI) or 'image_url'")
        return self


class BatchCreate(SubmissionFields):
    """The fields of `POST /v1/batches` that apply to every item (`items` only in JSON bodies)."""

    items: list[BatchItem] = Field(default_factory=list)

    def job_spec(self, item: BatchItem | None, name: str | None = None) -> JobCreate:
        """One item as a job request (None: a multipart image, named by its file `name`, with no overrides).

        Raises `ValidationError` when the merged fields break a job rule (say, `ask` without a prompt).
        """
        params = self.params.model_dump(by_alias=True, exclude_unset=True)
        metadata = dict(self.metadata)
        prompt = self.prompt
        if item is not None:
            name = item.name
            params |= item.params.model_dump(by_alias=True, exclude_unset=True) if item.params else {}
            metadata |= item.metadata or {}
            prompt = item.prompt if item.prompt is not None else prompt
        return JobCreate.model_validate(
            {
                "task": self.task,
                "prompt": prompt,
                "params": params,
                "metadata": metadata,
                "webhook": self.webhook,
                "webhook_events": self.webhook_events,
                "name": name,
            }
        )
