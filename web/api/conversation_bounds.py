"""Bounds on an `ask` conversation, checked at submit so no job can hold a GPU for minutes.

A follow-up (`params.parent_job_id`) carries every earlier question and answer of its
chain into the prompt; explicit `params.history` does the same. Both count against
`MAX_HISTORY_TURNS` earlier turns, and the question plus all earlier turns against
`VLMQ_MAX_CONVERSATION_CHARS`: the prompt-size estimate, about one token per character
(Chinese text is roughly that; English needs fewer tokens), made before the model sees it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from shared.models import Job
from shared.schemas import MAX_HISTORY_TURNS, JobCreate
from shared.settings import Settings
from web.errors import ApiError


def check_conversation(session: Session, settings: Settings, spec: JobCreate, parent: Job | None) -> None:
    """Raise a 400 when the conversation this job continues is too long; reads at most the allowed chain."""
    history = spec.params.history or []
    turns = len(history)
    chars = len(spec.prompt or "") + sum(len(turn.text) for turn in history)
    job = parent
    while job is not None:
        turns += 2
        if turns > MAX_HISTORY_TURNS:
            raise ApiError(
                "conversation_too_long",
                f"this follow-up would carry more than {MAX_HISTORY_TURNS} earlier turns "
                f"({MAX_HISTORY_TURNS // 2} questions and answers); start a new conversation with a fresh image",
            )
        chars += len(job.prompt or "") + len(str((job.result or {}).get("text") or ""))
        job = session.get(Job, job.parent_job_id) if job.parent_job_id else None
    if chars > settings.max_conversation_chars:
        raise ApiError(
            "prompt_too_long",
            f"the question and the earlier turns hold {chars} characters; the limit is "
            f"{settings.max_conversation_chars} (VLMQ_MAX_CONVERSATION_CHARS, about one token per character): "
            "shorten the history or start a new conversation",
        )
