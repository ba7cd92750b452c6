"""What the batching loop schedules: a `Ticket` per submitted request, a `Row` while it holds a slot.

A ticket's `status` is the loop's whole view of a request: it waits, runs, then ends one
way (stop, length, canceled, failed). Callers wait on the ticket from their own thread;
the loop is the only writer of rows. A cancel (`Ticket.cancel`) may come from any
thread: it is recorded here and acted on by the loop at its next step boundary.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from worker.inference.batching.kernels import CACHE_TOKENS
from worker.inference.budget_guard import BudgetGuard
from worker.inference.engine_contract import GenerationParams, ProgressCallback

FinishReason = Literal["stop", "length"]


class RowStatus(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED_STOP = "finished_stop"
    FINISHED_LENGTH = "finished_length"
    CANCELED = "canceled"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self not in (RowStatus.WAITING, RowStatus.RUNNING)


FINISHED_BY_REASON = {"stop": RowStatus.FINISHED_STOP, "length": RowStatus.FINISHED_LENGTH}


@dataclass
class Generated:
    """What a row produced: new token ids (an end token included) and why it stopped."""

    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int


@dataclass(eq=False)
class Ticket:
    """One submitted request and the caller waiting for it (compared by identity)."""

    inputs: dict[str, Any]
    params: GenerationParams
    constraint: Any | None = None
    guard: BudgetGuard | None = None
    progress: ProgressCallback | None = None
    interactive: bool = False
    status: RowStatus = RowStatus.WAITING
    queued_at_step: int = 0
    """The loop's step count when the ticket was submitted (how long it has gathered)."""
    generated: list[int] = field(default_factory=list)
    """New token ids so far: appended by the loop, read (copied) by the waiting caller."""
    stop_requested: BaseException | None = None
    """Set by `cancel` from any thread; the loop ends the row with it at its next step boundary."""
    _done: threading.Event = field(default_factory=threading.Event)
    _outcome: Generated | None = None
    _error: BaseException | None = None

    @property
    def prompt_tokens(self) -> int:
        """Prompt ids (what usage reports, as `generate()` does)."""
        return int(self.inputs["input_ids"].shape[1])

    @property
    def cache_tokens(self) -> int:
        """Cache positions the prompt fills: what a prefill computes and a slot must hold."""
        return int(self.inputs.get(CACHE_TOKENS, self.prompt_tokens))

    def cancel(self, reason: BaseException) -> None:
        """Ask the loop to end this request (canceled, out of time) with `reason` raised to its caller."""
        if self.stop_requested is None:
            self.stop_requested = reason

    def resolve(self, outcome: Generated) -> None:
        self.status = FINISHED_BY_REASON[outcome.finish_reason]
        self._outcome = outcome
        self._done.set()

    def fail(self, error: BaseException, status: RowStatus = RowStatus.FAILED) -> None:
        self.status = status
        self._error = error
        self._done.set()

    def wait(self, timeout_s: float | None = None) -> Generated | None:
        """Block until the row ends (None if `timeout_s` passes first); re-raises what stopped it."""
        if not self._done.wait(timeout_s):
            return None
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome


@dataclass(eq=False)
class Row:
    """A ticket while it holds a slot."""

    ticket: Ticket
    slot: int
    length: int  # tokens in the slot's cache
    position: int  # rotary position of the next token fed
    token: int = 0  # the next token to feed
    reported_at: float = 0.0

    @property
    def generated(self) -> list[int]:
        return self.ticket.generated
