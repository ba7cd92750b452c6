"""Which waiting requests join the running batch at the next step boundary.

Interactive tickets go first. Bulk tickets join within the prefill token budget; while
an interactive row decodes they are paced (every prefill stalls every row's next step,
and a caller waiting on a chat answer should not pay for bulk photos joining); while
other rows decode they gather into groups (a worker fed by Celery sees its slots free
one at a time, and a lone photo prefills far slower than a group). The queues are not
locked here: the scheduler calls every method under its own lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.inference.batching.rows import Ticket

# Prompt tokens of bulk work that may join per step while an interactive row decodes. At 128
# credit a chat answer of 128 tokens took 7.1 s under a 500-job backlog on the H100, its steps
# 3.7 s of it and bulk prefills most of the rest; at 16 about two photos join during such an
# answer (~0.3 s of prefill). Slots freed meanwhile wait for the answer to end.
BULK_TOKENS_PER_PACED_STEP = 16
# The most credit that may build up: about one standard photo's prompt joining at once.
PACED_BURST_TOKENS = 2048
# A prefill of one photo ran at 8,000 prompt tokens/s on the H100, of seven at 14,300
# (bench/results/gpu_prefill_profile_h100_nf4.json). A group is as many standard prompts as
# fill the prefill budget, held to an eighth of the slots (the most left idle while it
# gathers); a bulk ticket waits at most this many decode steps for its group.
GATHER_STEPS = 24
GATHER_SLOT_SHARE = 8


class Admission:
    """The waiting tickets, two queues, and the rule for taking them into free slots."""

    def __init__(self, prefill_tokens: int, slot_count: int) -> None:
        self.prefill_tokens = prefill_tokens
        self.slot_count = slot_count
        self._interactive: deque[Ticket] = deque()
        self._bulk: deque[Ticket] = deque()
        self._bulk_credit = 0

    def __len__(self) -> int:
        return len(self._interactive) + len(self._bulk)

    def add(self, ticket: Ticket, step: int) -> None:
        """Queue `ticket`, noting the loop's step count (how long it has gathered)."""
        ticket.queued_at_step = step
        (self._interactive if ticket.interactive else self._bulk).append(ticket)

    def drain(self) -> list[Ticket]:
        """Every waiting ticket, the queues left empty."""
        waiting = [*self._interactive, *self._bulk]
        self._interactive.clear()
        self._bulk.clear()
        return waiting

    def remove(self, leaving: Callable[[Ticket], bool]) -> list[Ticket]:
        """Take the waiting tickets `leaving` accepts out of the queues (canceled before they started)."""
        removed = [ticket for queue in (self._interactive, self._bulk) for ticket in queue if leaving(ticket)]
        if removed:
            for queue in (self._interactive, self._bulk):
                kept = [ticket for ticket in queue if not leaving(ticket)]
                queue.clear()
                queue.extend(kept)
        return removed

    def take(self, running: Iterable[Ticket], free: int, step: int) -> list[Ticket]:
        """Tickets for up to `free` slots, interactive first, within the prefill token budget.

        `running` are the rows' tickets: bulk is paced while one of them (or one taken now)
        is interactive, and gathers into a group while any row decodes.
        """
        running = list(running)
        paced = any(ticket.interactive for ticket in running)
        taken: list[Ticket] = []
        tokens = 0
        for queue in (self._interactive, self._bulk):
            paced = paced or any(ticket.interactive for ticket in taken)
            if queue is self._bulk and not paced and not taken and not self._group_ready(bool(running), free, step):
                return taken
            while queue and len(taken) < free:
                size = queue[0].cache_tokens
                if taken and tokens + size > self.prefill_tokens:
                    return taken
                if paced and queue is self._bulk:
                    if self._bulk_credit < min(size, PACED_BURST_TOKENS):
                        return taken
                    self._bulk_credit -= size  # a large prompt may overdraw: later steps repay it
                taken.append(queue.popleft())
                tokens += size
        return taken

    def stepped(self, interactive_live: bool) -> None:
        """One decode step ran: bulk earns pacing credit while an interactive row decodes, else none is kept."""
        if interactive_live:
            self._bulk_credit = min(PACED_BURST_TOKENS, self._bulk_credit + BULK_TOKENS_PER_PACED_STEP)
        else:
            self._bulk_credit = 0

    def _group_ready(self, decoding: bool, free: int, step: int) -> bool:
        """Whether the waiting bulk tickets may be prefilled now rather than gather more.

        With no row decoding nothing is gained by waiting; otherwise the group must be full
        (or fill every free slot), or its oldest ticket have waited `GATHER_STEPS` steps.
        """
        if not self._bulk or not decoding:
            return True
        group = min(self.prefill_tokens // self._bulk[0].cache_tokens, self.slot_count // GATHER_SLOT_SHARE)
        waiting = len(self._bulk)
        waited = step - self._bulk[0].queued_at_step
        return waiting >= max(1, group) or waiting >= free or waited >= GATHER_STEPS
