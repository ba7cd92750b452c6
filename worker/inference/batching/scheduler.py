"""The batching loop: admits new requests at step boundaries, steps every running row
once per iteration, and hands each caller its tokens when its row ends.

One thread owns the model. Callers (one per job, on Celery's worker threads)
submit a `Ticket` and wait on it. Per loop iteration: waiting tickets are admitted
while slots are free (which ones, `admission` decides), prefilled together, and join
the batch; then one decode step runs for every live row. A row leaves when it emits an end token,
reaches its `max_new_tokens`, its constraint stops, or its progress callback raises
(the job was canceled or ran out of time); its slot is free for the next ticket at
once. A request that fails in prefill fails alone: a failed group prefill is retried
one request at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.json_closing import ClosingError
from worker.inference.batching.admission import Admission
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.batching.masks import BatchMasks
from worker.inference.batching.prefill import Prefilled
from worker.inference.batching.sampling import Sampler
from worker.inference.batching.step_runner import EagerSteps
from worker.inference.budget_guard import BudgetGuard
from worker.inference.engine_contract import GenerationParams, InferenceError, ProgressCallback, StopGeneration

log = logging.getLogger(__name__)

FinishReason = Literal["stop", "length"]
PROGRESS_INTERVAL_S = 0.5


@dataclass
class LoopStats:
    """Where the loop's time goes (wall clock, GPU work included): admissions vs decode steps."""

    steps: int = 0
    step_s: float = 0.0
    prefills: int = 0
    prefill_tokens: int = 0
    prefill_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "steps": self.steps,
            "step_ms": round(1000 * self.step_s / max(1, self.steps), 2),
            "step_s": round(self.step_s, 2),
            "prefills": self.prefills,
            "prefill_tokens": self.prefill_tokens,
            "prefill_s": round(self.prefill_s, 2),
        }


@dataclass
class Generated:
    """What a row produced: new token ids (an end token included) and why it stopped."""

    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int


@dataclass
class Ticket:
    """One submitted request and the caller waiting for it."""

    inputs: dict[str, Any]
    params: GenerationParams
    constraint: Any | None = None
    guard: BudgetGuard | None = None
    progress: ProgressCallback | None = None
    interactive: bool = False
    queued_at_step: int = 0
    """The loop's step count when the ticket was submitted (how long it has gathered)."""
    generated: list[int] = field(default_factory=list)
    """New token ids so far: appended by the loop, read (copied) by the waiting caller."""
    _done: threading.Event = field(default_factory=threading.Event)
    _outcome: Generated | None = None
    _error: BaseException | None = None

    @property
    def prompt_tokens(self) -> int:
        return int(self.inputs["input_ids"].shape[1])

    def resolve(self, outcome: Generated) -> None:
        self._outcome = outcome
        self._done.set()

    def fail(self, error: BaseException) -> None:
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


@dataclass
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


class Scheduler:
    """Continuous batching over `slots.slots` rows; `start()` runs it on its own thread."""

    def __init__(
        self,
        *,
        prefill: Callable[[list[dict[str, Any]]], list[Prefilled]],
        steps: EagerSteps,
        slots: KVSlots,
        sampler: Sampler,
        masks: BatchMasks | None,
        end_ids: Iterable[int],
        prefill_tokens: int,
        on_fatal: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefill = prefill
        self.steps = steps
        self.slots = slots
        self.sampler = sampler
        self.masks = masks
        self.end_ids = frozenset(end_ids)
        self.on_fatal = on_fatal
        self.clock = clock
        self.rows: dict[int, Row] = {}
        self.admission = Admission(prefill_tokens, slots.slots)
        self._wake = threading.Condition()
        self._broken: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="vlmq-batcher", daemon=True)
        self._pending_seen: list[tuple[int, int]] = []
        self.stats = LoopStats()

    @property
    def waiting(self) -> int:
        """Tickets submitted and not yet admitted."""
        with self._wake:
            return len(self.admission)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Finish the running and waiting tickets, then end the loop's thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    def submit(self, ticket: Ticket) -> Ticket:
        """Queue a ticket for the next step boundary."""
        with self._wake:
            if self._broken is not None or self._closing:
                raise RuntimeError(f"the batching loop is not running: {self._broken or 'closed'!r}")
            self.admission.add(ticket, self.stats.steps)
            self._wake.notify()
        return ticket

    def _loop(self) -> None:
        import torch

        try:
            with torch.inference_mode():
                while True:
                    with self._wake:
                        while not self.rows and not self.admission:
                            if self._closing:
                                return
                            self._wake.wait()
                    self._admit()
                    if self.rows:
                        self._step()
        except BaseException as exc:
            log.critical("the batching loop crashed; failing its jobs", exc_info=exc)
            self._stop_all(exc)
            if self.on_fatal is not None:
                self.on_fatal(exc)

    def _stop_all(self, exc: BaseException) -> None:
        with self._wake:
            self._broken = exc
            waiting = self.admission.drain()
        for ticket in [row.ticket for row in self.rows.values()] + waiting:
            ticket.fail(exc)
        self.rows.clear()

    # -- admission ---------------------------------------------------------------------------

    def _take_waiting(self) -> list[Ticket]:
        with self._wake:
            running = [row.ticket for row in self.rows.values()]
            return self.admission.take(running, self.slots.free_count, self.stats.steps)

    def _admissible(self, ticket: Ticket) -> bool:
        needed = ticket.prompt_tokens + ticket.params.max_new_tokens
        if needed > self.slots.capacity:
            ticket.fail(
                InferenceError(
                    "input_too_long",
                    f"the prompt ({ticket.prompt_tokens} tokens) plus max_new_tokens "
                    f"({ticket.params.max_new_tokens}) exceed this worker's {self.slots.capacity}-token sequence limit",
                )
            )
            return False
        return self._report(ticket, 0)

    def _admit(self) -> None:
        tickets = [ticket for ticket in self._take_waiting() if self._admissible(ticket)]
        if not tickets:
            return
        started = time.perf_counter()
        joined = self._prefill_isolating(tickets)
        if not joined:
            return
        import torch

        rows = []
        for ticket, prefilled in joined:
            slot = self.slots.acquire()
            self.slots.load(slot, prefilled.layer_kv)
            self.sampler.join(slot, ticket.params, prefilled.prompt_ids)
            rows.append(Row(ticket, slot, length=prefilled.length, position=prefilled.next_position))
        logits = torch.stack([prefilled.logits for _, prefilled in joined])
        device_slots = torch.tensor([row.slot for row in rows], device=logits.device)
        firsts = self._pick(logits, device_slots, rows)
        self.stats.prefills += 1
        self.stats.prefill_tokens += sum(ticket.prompt_tokens for ticket, _ in joined)
        self.stats.prefill_s += time.perf_counter() - started
        for row, token in zip(rows, firsts, strict=True):
            self.rows[row.slot] = row
            self._advance(row, token)
        self._observe()

    def _prefill_isolating(self, tickets: list[Ticket]) -> list[tuple[Ticket, Prefilled]]:
        """Prefill together; if that fails, one by one, so only the culprit fails."""
        try:
            return list(zip(tickets, self.prefill([t.inputs for t in tickets]), strict=True))
        except Exception as exc:  # noqa: BLE001 - any model error; the retry below finds its request
            if len(tickets) == 1:
                log.warning("prefill failed for one request: %r", exc)
                tickets[0].fail(InferenceError("inference_error", f"the model could not read this input: {exc}"))
                return []
        joined = []
        for ticket in tickets:
            joined.extend(self._prefill_isolating([ticket]))
        return joined

    # -- decoding ----------------------------------------------------------------------------

    def _step(self) -> None:
        started = time.perf_counter()
        batch = max(self.rows) + 1
        tokens, positions, lengths = [0] * batch, [0] * batch, [0] * batch
        for slot, row in self.rows.items():
            tokens[slot], positions[slot], lengths[slot] = row.token, row.position, row.length
        window = max(row.length for row in self.rows.values()) + 1
        logits = self.steps(tokens, positions, lengths, window)[:batch]
        rows = list(self.rows.values())
        picked = self._pick(logits, self.steps.step.row_index[:batch], rows, by_slot=True)
        for row in rows:
            row.length += 1
            row.position += 1
            self._advance(row, picked[row.slot])
        self.admission.stepped(any(row.ticket.interactive for row in rows))
        self.stats.steps += 1
        self.stats.step_s += time.perf_counter() - started
        self._observe()

    def _pick(self, logits: Any, device_slots: Any, rows: list[Row], by_slot: bool = False) -> list[int]:
        """Sample one token per logits row; row i of `logits` is `rows[i]`, or the row in slot i if `by_slot`."""
        where = [row.slot for row in rows] if by_slot else range(len(rows))
        matchers = [(row.ticket.constraint, i) for row, i in zip(rows, where, strict=True) if row.ticket.constraint]
        allowed = self.masks.allowed(matchers, logits.shape[0]) if self.masks is not None else None
        active = [row.slot for row in rows]
        return self.sampler.pick(logits, device_slots, active, allowed).tolist()

    def _advance(self, row: Row, token: int) -> None:
        """Record a sampled token (or the one the budget guard puts in its place); end the row if it is finished."""
        ticket = row.ticket
        if ticket.guard is not None:
            try:
                token = ticket.guard.choose(token, ticket.params.max_new_tokens - len(row.generated))
            except ClosingError as exc:  # the planner and llguidance disagree: a bug, reported on this job only
                self._end(row, error=InferenceError("invalid_output", f"the output cannot be closed: {exc}"))
                return
        row.generated.append(token)
        row.token = token
        self._pending_seen.append((row.slot, token))
        if ticket.constraint is not None and not ticket.constraint.consume_token(token):
            self._end(row, error=InferenceError("invalid_output", f"constraint rejected token {token}"))
        elif token in self.end_ids or (ticket.constraint is not None and ticket.constraint.is_stopped()):
            self._end(row, "stop")
        elif len(row.generated) >= ticket.params.max_new_tokens:
            self._end(row, "length")
        elif self.clock() - row.reported_at >= PROGRESS_INTERVAL_S:
            row.reported_at = self.clock()
            if not self._report(ticket, len(row.generated)):
                self._end(row)

    def _observe(self) -> None:
        """Mark this iteration's tokens as seen by their slots (for repetition penalty)."""
        import torch

        live = [(slot, token) for slot, token in self._pending_seen if slot in self.rows]
        self._pending_seen = []
        if live:
            pairs = torch.tensor(live, device=self.sampler.seen.device)
            self.sampler.observe(pairs[:, 0], pairs[:, 1])

    def _report(self, ticket: Ticket, tokens: int) -> bool:
        """Tell the caller how far it got; its callback raising (canceled, out of time) ends it."""
        if ticket.progress is None:
            return True
        try:
            ticket.progress(tokens, ticket.params.max_new_tokens)
        except StopGeneration as exc:
            ticket.fail(exc)
            return False
        return True

    def _end(self, row: Row, reason: FinishReason | None = None, error: BaseException | None = None) -> None:
        """Free the row's slot; resolve its ticket unless it already failed."""
        self.rows.pop(row.slot, None)
        self.slots.release(row.slot)
        self.sampler.leave(row.slot)
        if error is not None:
            row.ticket.fail(error)
        elif reason is not None and self._report(row.ticket, len(row.generated)):
            row.ticket.resolve(Generated(row.generated, reason, row.ticket.prompt_tokens))
