"""The batching policy loop: which rows run, when they join, and why they end.

One thread owns the loop and, through `GpuRunner`, the model. Callers (one per job, on
Celery's worker threads) submit a `Ticket` and wait on it. Per iteration: canceled
tickets leave (a running row frees its slot at this step boundary, a waiting one never
starts); waiting tickets are admitted while slots are free (which ones, `admission`
decides), prefilled together, and join the batch; then one decode step runs for every
live row. A row ends when it emits an end token, reaches its `max_new_tokens`, its
constraint stops, or it is canceled (pushed by `Ticket.cancel`, or its progress
callback raising). A request that fails in prefill fails alone: a failed group prefill
is retried one request at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.json_closing import ClosingError
from worker.inference.batching.admission import Admission
from worker.inference.batching.gpu_runner import GpuRunner
from worker.inference.batching.rows import FinishReason, Generated, Row, RowStatus, Ticket
from worker.inference.engine_contract import InferenceError, StopGeneration

log = logging.getLogger(__name__)

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


class Scheduler:
    """Continuous batching over the runner's slots; `start()` runs it on its own thread."""

    def __init__(
        self,
        *,
        runner: GpuRunner,
        end_ids: Iterable[int],
        prefill_tokens: int,
        on_fatal: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner
        self.end_ids = frozenset(end_ids)
        self.on_fatal = on_fatal
        self.clock = clock
        self.rows: dict[int, Row] = {}
        self.admission = Admission(prefill_tokens, runner.slots.slots)
        self._wake = threading.Condition()
        self._broken: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="vlmq-batcher", daemon=True)
        self.stats = LoopStats()

    @property
    def free_slots(self) -> int:
        return self.runner.slots.free_count

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
        """Queue a ticket (its inputs staged by `runner.stage`) for the next step boundary."""
        with self._wake:
            if self._broken is not None or self._closing:
                raise RuntimeError(f"the batching loop is not running: {self._broken or 'closed'!r}")
            self.admission.add(ticket, self.stats.steps)
            self._wake.notify()
        return ticket

    def cancel(self, ticket: Ticket, reason: BaseException) -> None:
        """End `ticket` with `reason` at the next step boundary (from any thread)."""
        ticket.cancel(reason)
        with self._wake:
            self._wake.notify()

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
                    self._drop_canceled()
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

    def _drop_canceled(self) -> None:
        """Canceled rows free their slots now; canceled waiting tickets never start."""
        for row in [row for row in self.rows.values() if row.ticket.stop_requested is not None]:
            self._end(row, error=row.ticket.stop_requested, status=RowStatus.CANCELED)
        with self._wake:
            dropped = self.admission.remove(lambda ticket: ticket.stop_requested is not None)
        for ticket in dropped:
            assert ticket.stop_requested is not None
            ticket.fail(ticket.stop_requested, RowStatus.CANCELED)

    # -- admission ---------------------------------------------------------------------------

    def _take_waiting(self) -> list[Ticket]:
        with self._wake:
            running = [row.ticket for row in self.rows.values()]
            return self.admission.take(running, self.free_slots, self.stats.steps)

    def _admissible(self, ticket: Ticket) -> bool:
        needed, capacity = ticket.cache_tokens + ticket.params.max_new_tokens, self.runner.capacity
        if needed > capacity:
            ticket.fail(
                InferenceError(
                    "input_too_long",
                    f"the prompt ({ticket.cache_tokens} tokens) plus max_new_tokens "
                    f"({ticket.params.max_new_tokens}) exceed this worker's {capacity}-token sequence limit",
                )
            )
            return False
        return self._report(ticket, 0)

    def _admit(self) -> None:
        tickets = [ticket for ticket in self._take_waiting() if self._admissible(ticket)]
        if not tickets:
            return
        started = time.perf_counter()
        joined = self._join_isolating(tickets)
        if not joined:
            return
        self.stats.prefills += 1
        self.stats.prefill_tokens += sum(row.ticket.cache_tokens for row, _ in joined)
        self.stats.prefill_s += time.perf_counter() - started
        for row, token in joined:
            row.ticket.status = RowStatus.RUNNING
            self.rows[row.slot] = row
            self._advance(row, token)
        self.runner.observe(self.rows)

    def _join_isolating(self, tickets: list[Ticket]) -> list[tuple[Row, int]]:
        """Prefill together; if that fails, one by one, so only the culprit fails."""
        try:
            return self.runner.join(tickets)
        except Exception as exc:  # noqa: BLE001 - any model error; the retry below finds its request
            if len(tickets) == 1:
                log.warning("prefill failed for one request: %r", exc)
                tickets[0].fail(InferenceError("inference_error", f"the model could not read this input: {exc}"))
                return []
        joined = []
        for ticket in tickets:
            joined.extend(self._join_isolating([ticket]))
        return joined

    # -- decoding ----------------------------------------------------------------------------

    def _step(self) -> None:
        started = time.perf_counter()
        rows = list(self.rows.values())
        picked = self.runner.step(rows)
        for row in rows:
            row.length += 1
            row.position += 1
            self._advance(row, picked[row.slot])
        self.admission.stepped(any(row.ticket.interactive for row in rows))
        self.stats.steps += 1
        self.stats.step_s += time.perf_counter() - started
        self.runner.observe(self.rows)

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
        self.runner.saw(row.slot, token)
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

    def _report(self, ticket: Ticket, tokens: int) -> bool:
        """Tell the caller how far it got; its callback raising (canceled, out of time) ends it."""
        if ticket.progress is None:
            return True
        try:
            ticket.progress(tokens, ticket.params.max_new_tokens)
        except StopGeneration as exc:
            ticket.fail(exc, RowStatus.CANCELED)
            return False
        return True

    def _end(
        self,
        row: Row,
        reason: FinishReason | None = None,
        error: BaseException | None = None,
        status: RowStatus = RowStatus.FAILED,
    ) -> None:
        """Free the row's slot; resolve its ticket unless it already ended."""
        self.rows.pop(row.slot, None)
        self.runner.leave(row.slot)
        if error is not None:
            row.ticket.fail(error, status)
        elif reason is not None and self._report(row.ticket, len(row.generated)):
            row.ticket.resolve(Generated(row.generated, reason, row.ticket.prompt_tokens))
