"""Schema constraints for the rows of a batch: one llguidance matcher per constrained row.

The masks of all constrained rows are computed together on llguidance's thread
pool, while the GPU runs the decode step, and unpacked on the device only when at
least one row is constrained.
"""

from __future__ import annotations

from typing import Any

from worker.inference.constrained import unpack_bitmask


class BatchMasks:
    """Fills the allowed-token masks of the constrained rows of one step."""

    def __init__(self, slots: int, vocab: int, device: Any) -> None:
        import llguidance
        import llguidance.torch as llt

        self.vocab = vocab
        self.device = device
        self.bitmask = llt.allocate_token_bitmask(slots, vocab)
        self._executor = llguidance.LLExecutor()
        self._fill = llt.fill_next_token_bitmask_par

    def allowed(self, matchers: list[tuple[Any, int]], rows: int) -> Any | None:
        """`(rows, vocab)` bool on the device, or None when no row is constrained.

        `matchers` pairs each constrained row's matcher with its row index; the other
        rows allow every token.
        """
        if not matchers:
            return None
        bits = self.bitmask[:rows]
        bits.fill_(-1)
        self._fill(self._executor, matchers, bits)
        return unpack_bitmask(bits.to(self.device, non_blocking=True), self.vocab)
