"""Plain data crossing the boundary between the job runner and the inference engine.

The runner (DB, Celery) builds an `InferenceRequest`; the engine (torch,
transformers) returns an `InferenceResult` or raises `InferenceError`. Neither side
knows the other's internals, so each is testable alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from PIL import Image

from shared.errors import ServiceError
from shared.request_rules import Task

ProgressCallback = Callable[[int, int], None]
"""Called with (tokens generated so far, token budget) while generating; may raise `StopGeneration`."""
TextCallback = Callable[[str], None]
"""Called with each new piece of the answer's visible text while generating (best effort: the
finished result is what counts; see `worker.inference.text_deltas`)."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings after merging defaults with bounded per-request overrides."""

    max_new_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float


@dataclass(frozen=True)
class Turn:
    """One earlier message of a conversation about the same image."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class InferenceRequest:
    """What one job asks the model."""

    task: Task
    image: Image.Image
    generation: GenerationParams
    prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    history: tuple[Turn, ...] = ()
    interactive: bool = False
    """A caller is waiting (chat, `Prefer: wait`): served before bulk work."""


@dataclass
class InferenceResult:
    """What the model answered, ready to store in the job row."""

    text: str
    data: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    redactions: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    """`stop` (the model ended its answer) or `length` (max_new_tokens ran out)."""


class StopGeneration(Exception):
    """Raised by a progress callback to end its request early (canceled, out of time)."""


class StopSignal:
    """Tells a running request to stop, pushed from outside generation (a cancel, a time limit).

    Set once, from any thread; whoever generates listens (the batching loop frees the
    row's slot at its next step) or checks `reason` between tokens.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: StopGeneration | None = None
        self._listeners: list[Callable[[StopGeneration], None]] = []

    @property
    def reason(self) -> StopGeneration | None:
        return self._reason

    def set(self, reason: StopGeneration) -> None:
        """Stop with `reason` (the first reason wins); listeners are called on this thread."""
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
            listeners = list(self._listeners)
        for listener in listeners:
            listener(reason)

    def listen(self, listener: Callable[[StopGeneration], None]) -> None:
        """Call `listener(reason)` when the signal is set (at once if it already is)."""
        with self._lock:
            if self._reason is None:
                self._listeners.append(listener)
                return
        listener(self._reason)


class InferenceError(ServiceError):
    """A failure the job reports to its user, with a stable machine-readable code.

    One of the service's error family (`shared.errors`): the worker records its code and
    message on the job; its status (422: the request was understood, this input could not
    be answered) applies wherever it reaches HTTP directly.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, 422)


class Engine(Protocol):
    """A loaded model that answers requests; one per worker process."""

    model_name: str
    is_placeholder: bool

    def run(
        self,
        request: InferenceRequest,
        progress: ProgressCallback | None = None,
        on_text: TextCallback | None = None,
        stop: StopSignal | None = None,
    ) -> InferenceResult: ...
