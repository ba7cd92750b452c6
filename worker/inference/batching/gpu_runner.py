"""The device side of the batching engine: KV slots, the family's kernels, captured steps, sampling.

The policy loop (`scheduler`) decides which rows run; this runner does what it is told
on the GPU and hands back plain token ids: `join` prefills tickets into free slots and
samples their first tokens, `step` runs one decode step over the live rows, `leave`
frees a slot. Nothing here knows about queues, cancels or callers.
"""

from __future__ import annotations

from typing import Any

from worker.inference.batching.kernels import BatchKernels
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.batching.masks import BatchMasks
from worker.inference.batching.rows import Row, Ticket
from worker.inference.batching.sampling import Sampler
from worker.inference.batching.step_runner import EagerSteps


class GpuRunner:
    """Owns everything on the device; one thread (the loop's) calls it."""

    def __init__(
        self, kernels: BatchKernels, slots: KVSlots, steps: EagerSteps, sampler: Sampler, masks: BatchMasks | None
    ) -> None:
        self.kernels = kernels
        self.slots = slots
        self.steps = steps
        self.sampler = sampler
        self.masks = masks
        self._seen: list[tuple[int, int]] = []

    @property
    def capacity(self) -> int:
        """Tokens one slot holds: prompt plus new tokens."""
        return self.slots.capacity

    def stage(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """On the caller's thread: prepare a request's inputs for prefill (see `BatchKernels.stage`)."""
        return self.kernels.stage(inputs)

    def join(self, tickets: list[Ticket]) -> list[tuple[Row, int]]:
        """Prefill `tickets` together into free slots; each new row with its first sampled token.

        If the prefill fails, the slots taken are freed again and the error is raised.
        """
        import torch

        taken = [self.slots.acquire() for _ in tickets]
        try:
            prefilled = self.kernels.prefill([ticket.inputs for ticket in tickets], taken)
        except BaseException:
            for slot in taken:
                self.slots.release(slot)
            raise
        rows = []
        for ticket, slot, done in zip(tickets, taken, prefilled, strict=True):
            self.sampler.join(slot, ticket.params, done.prompt_ids)
            rows.append(Row(ticket, slot, length=done.cached, position=done.next_position))
        logits = torch.stack([done.logits for done in prefilled])
        firsts = self._pick(logits, torch.tensor(taken, device=logits.device), rows, by_slot=False)
        return list(zip(rows, firsts, strict=True))

    def step(self, rows: list[Row]) -> dict[int, int]:
        """One decode step over `rows`; the next token of each, by slot."""
        batch = max(row.slot for row in rows) + 1
        tokens, positions, lengths = [0] * batch, [0] * batch, [0] * batch
        window = 0
        for row in rows:
            tokens[row.slot], positions[row.slot], lengths[row.slot] = row.token, row.position, row.length
            window = max(window, row.length + 1)
        logits = self.steps(tokens, positions, lengths, window)[:batch]
        picked = self._pick(logits, self.steps.row_index[:batch], rows, by_slot=True)
        return {row.slot: picked[row.slot] for row in rows}

    def saw(self, slot: int, token: int) -> None:
        """Note a token fed to `slot` (for repetition penalty); applied in bulk by `observe`."""
        self._seen.append((slot, token))

    def observe(self, live: set[int] | dict[int, Any]) -> None:
        """Mark the noted tokens as seen by their slots, for the slots still live."""
        import torch

        pairs = [(slot, token) for slot, token in self._seen if slot in live]
        self._seen = []
        if pairs:
            index = torch.tensor(pairs, device=self.sampler.seen.device)
            self.sampler.observe(index[:, 0], index[:, 1])

    def leave(self, slot: int) -> None:
        """Free a row's slot for the next ticket."""
        self.slots.release(slot)
        self.sampler.leave(slot)

    def _pick(self, logits: Any, device_slots: Any, rows: list[Row], by_slot: bool) -> list[int]:
        """One token per logits row; row i of `logits` is `rows[i]`, or the row in slot i if `by_slot`."""
        where = [row.slot for row in rows] if by_slot else range(len(rows))
        matchers = [(row.ticket.constraint, i) for row, i in zip(rows, where, strict=True) if row.ticket.constraint]
        allowed = self.masks.allowed(matchers, logits.shape[0]) if self.masks is not None else None
        active = [row.slot for row in rows]
        return self.sampler.pick(logits, device_slots, active, allowed).tolist()
