"""Choosing each row's next token with that row's own settings, in one pass for the batch.

Per slot: temperature (0 = greedy), top_p, repetition penalty and the set of tokens
the sequence has seen (prompt included, as transformers' repetition penalty counts
them). The order matches transformers' `generate()`: repetition penalty, then the
schema constraint, then temperature and nucleus sampling, so a greedy row picks the
same token whatever else is in the batch.
"""

from __future__ import annotations

from typing import Any

from worker.inference.engine_contract import GenerationParams


class Sampler:
    """Per-slot sampling state on the model's device."""

    def __init__(self, slots: int, vocab: int, device: Any) -> None:
        import torch

        self.temperature = torch.zeros(slots, device=device)
        self.top_p = torch.ones(slots, device=device)
        self.penalty = torch.ones(slots, device=device)
        self.seen = torch.zeros(slots, vocab, dtype=torch.bool, device=device)
        self.generator = torch.Generator(device=device)
        self.generator.seed()
        self._settings: dict[int, GenerationParams] = {}

    def join(self, slot: int, params: GenerationParams, prompt_ids: Any) -> None:
        """Take a slot over for a new sequence whose prompt is `prompt_ids` (1-D, on device)."""
        self.temperature[slot] = max(params.temperature, 0.0)
        self.top_p[slot] = params.top_p
        self.penalty[slot] = params.repetition_penalty
        self.seen[slot] = False
        self.seen[slot, prompt_ids] = True
        self._settings[slot] = params

    def leave(self, slot: int) -> None:
        """Free the slot; it samples greedily until taken again, so its garbage row costs nothing."""
        self._settings.pop(slot, None)
        self.temperature[slot] = 0.0

    def observe(self, slots: Any, tokens: Any) -> None:
        """Record the tokens just fed to `slots` (both 1-D device tensors)."""
        self.seen[slots, tokens] = True

    def pick(self, logits: Any, slots: Any, active: list[int], allowed: Any | None = None) -> Any:
        """Next token for every row of `logits` (row i belongs to `slots[i]`); `active` are the
        slots whose choice matters, deciding which sampling work is needed at all."""
        import torch

        scores = logits.float()
        if any(self._settings[s].repetition_penalty != 1.0 for s in active):
            penalty = self.penalty[slots].unsqueeze(1)
            penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
            scores = torch.where(self.seen[slots], penalized, scores)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        greedy = scores.argmax(dim=-1)
        if all(self._settings[s].temperature <= 0 for s in active):
            return greedy
        temperature = self.temperature[slots].clamp(min=1e-5).unsqueeze(1)
        ordered, order = (scores / temperature).sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        beyond = (probs.cumsum(dim=-1) - probs) >= self.top_p[slots].unsqueeze(1)
        ordered = ordered.masked_fill(beyond, float("-inf"))
        choice = torch.multinomial(ordered.softmax(dim=-1), 1, generator=self.generator).squeeze(1)
        sampled = order.gather(1, choice.unsqueeze(1)).squeeze(1)
        return torch.where(self.temperature[slots] > 0, sampled, greedy)
