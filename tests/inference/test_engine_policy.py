"""The batching engine's parts that need no model: admission, slots, sampling state, memory and precision."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from worker.inference.batching import admission as admission_module
from worker.inference.batching.admission import Admission
from worker.inference.batching.gpu_runner import GpuRunner
from worker.inference.batching.kernels import KVLayout, Prefilled
from worker.inference.batching.kv_slots import KVSlots
from worker.inference.batching.memory_plan import (
    MIN_PREFILL_TOKENS,
    SMALL_CARD_SLOTS,
    bytes_per_slot,
    choose_precision,
    fit_to_memory,
    usable_memory,
)
from worker.inference.batching.rows import Row, RowStatus, Ticket
from worker.inference.batching.sampling import Sampler
from worker.inference.batching.step_runner import EagerSteps, ladder
from worker.inference.engine_contract import GenerationParams, StopGeneration, StopSignal

GIB = 2**30
VOCAB = 32
GLM46V = KVLayout(layers=40, kv_heads=2, head_dim=128)
GLM46V_PARAMETERS = 10_290_000_000
GLM46V_VOCAB = 151_552


def params(tokens: int = 8, temperature: float = 0.0, penalty: float = 1.0) -> GenerationParams:
    return GenerationParams(max_new_tokens=tokens, temperature=temperature, top_p=1.0, repetition_penalty=penalty)


def ticket(prompt_tokens: int, interactive: bool = False) -> Ticket:
    return Ticket({"input_ids": torch.zeros(1, prompt_tokens, dtype=torch.long)}, params(), interactive=interactive)


# -- admission -------------------------------------------------------------------------------


def test_interactive_tickets_are_taken_before_bulk_and_within_the_prefill_budget() -> None:
    queue = Admission(prefill_tokens=3000, slot_count=64)
    bulk = [ticket(1000) for _ in range(4)]
    chat = ticket(1000, interactive=True)
    for t in [*bulk, chat]:
        queue.add(t, step=0)
    assert queue.take([], free=64, step=0) == [chat]  # first, and bulk is paced behind it (no credit yet)
    # Nothing decodes, no chat: no gathering, bulk up to 3,000 prompt tokens.
    assert queue.take([], free=64, step=0) == bulk[:3]
    assert len(queue) == 1


def test_free_slots_bound_what_is_taken() -> None:
    queue = Admission(prefill_tokens=100_000, slot_count=64)
    waiting = [ticket(10) for _ in range(5)]
    for t in waiting:
        queue.add(t, step=0)
    assert queue.take([], free=2, step=0) == waiting[:2]


def test_bulk_waits_for_its_group_while_rows_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission_module, "GATHER_STEPS", 5)
    queue = Admission(prefill_tokens=8192, slot_count=64)  # a group: min(8192 // 1000, 64 // 8) = 8 tickets
    running = [ticket(1000)]
    first = ticket(1000)
    queue.add(first, step=10)
    assert queue.take(running, free=20, step=12) == []  # gathering
    assert queue.take(running, free=20, step=15) == [first]  # waited GATHER_STEPS
    group = [ticket(1000) for _ in range(8)]
    for t in group:
        queue.add(t, step=20)
    assert queue.take(running, free=20, step=20) == group  # a full group goes at once


def test_bulk_is_paced_while_an_interactive_row_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission_module, "BULK_TOKENS_PER_PACED_STEP", 100)
    queue = Admission(prefill_tokens=8192, slot_count=64)
    chat_row = ticket(500, interactive=True)
    bulk = [ticket(300) for _ in range(3)]
    for t in bulk:
        queue.add(t, step=0)
    assert queue.take([chat_row], free=10, step=0) == []  # no credit yet
    for _ in range(3):
        queue.stepped(interactive_live=True)
    assert queue.take([chat_row], free=10, step=3) == [bulk[0]]  # 300 tokens of credit: one photo
    queue.stepped(interactive_live=False)  # the chat ended: credit is not kept
    assert queue.take([], free=10, step=4) == bulk[1:]


def test_canceled_waiting_tickets_leave_the_queues() -> None:
    queue = Admission(prefill_tokens=8192, slot_count=8)
    keep, doomed, chat = ticket(10), ticket(10), ticket(10, interactive=True)
    for t in (keep, doomed, chat):
        queue.add(t, step=0)
    doomed.cancel(StopGeneration("job_x"))
    assert queue.remove(lambda t: t.stop_requested is not None) == [doomed]
    assert queue.take([], free=8, step=0) == [chat]
    assert queue.take([], free=8, step=0) == [keep]


# -- rows and stop signals -------------------------------------------------------------------


def test_a_ticket_ends_once_with_its_status() -> None:
    t = ticket(5)
    assert t.status is RowStatus.WAITING and not t.status.is_finished
    reason = StopGeneration("job_x")
    t.cancel(reason)
    t.cancel(StopGeneration("later"))  # the first reason wins
    assert t.stop_requested is reason
    t.fail(reason, RowStatus.CANCELED)
    assert t.status is RowStatus.CANCELED and t.status.is_finished
    with pytest.raises(StopGeneration):
        t.wait(0)


def test_a_stop_signal_is_set_once_and_heard_by_late_listeners() -> None:
    signal = StopSignal()
    heard: list[BaseException] = []
    signal.listen(heard.append)
    first, second = StopGeneration("a"), StopGeneration("b")
    signal.set(first)
    signal.set(second)
    signal.listen(heard.append)  # already set: called at once
    assert heard == [first, first] and signal.reason is first


# -- slots and the runner ----------------------------------------------------------------------


def test_slots_are_handed_out_lowest_first_and_holes_are_refilled() -> None:
    slots = KVSlots(layers=1, slots=4, kv_heads=1, head_dim=2, capacity=8, dtype=torch.float32, device="cpu")
    assert [slots.acquire() for _ in range(3)] == [0, 1, 2]
    slots.release(1)  # a hole below the highest live slot
    assert slots.free_count == 2
    assert slots.acquire() == 1
    assert slots.acquire() == 3
    assert slots.free_count == 0


class SlotEcho:
    """A family kernel for the runner alone: each slot's logits favour `slot * 10 + length % 10`."""

    def __init__(self, slots: KVSlots) -> None:
        self.slots = slots
        self.seen: list[tuple[int, int]] = []

    def stage(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return inputs

    def prefill(self, inputs: list[dict[str, Any]], slots: list[int]) -> list[Prefilled]:
        out = []
        for item, slot in zip(inputs, slots, strict=True):
            logits = torch.zeros(VOCAB)
            logits[slot] = 1.0
            ids = item["input_ids"][0]
            out.append(Prefilled(logits, next_position=3, prompt_ids=ids, cached=len(ids)))
        return out

    def decode(self, tokens: Any, positions: Any, lengths: Any, batch: int, window: int) -> Any:
        self.seen.append((batch, window))
        logits = torch.zeros(batch, VOCAB)
        for slot in range(batch):
            logits[slot, (slot * 10 + int(lengths[slot]) % 10) % VOCAB] = 1.0
        return logits


def test_the_runner_steps_rows_around_a_hole_by_slot() -> None:
    slots = KVSlots(layers=1, slots=4, kv_heads=1, head_dim=2, capacity=64, dtype=torch.float32, device="cpu")
    kernel = SlotEcho(slots)
    runner = GpuRunner(kernel, slots, EagerSteps(kernel.decode, slots), Sampler(4, VOCAB, "cpu"), masks=None)
    joined = runner.join([ticket(5), ticket(7), ticket(6)])
    assert [(row.slot, token) for row, token in joined] == [(0, 0), (1, 1), (2, 2)]
    rows = {row.slot: row for row, _ in joined}
    runner.leave(1)  # slot 1 leaves: slots 0 and 2 remain, a hole between them
    live = [rows[0], rows[2]]
    assert runner.step(live) == {0: 5, 2: (20 + 6) % VOCAB}
    assert kernel.seen[-1] == (3, 7)  # three rows computed (the hole too); the longest row plus its new token
    assert slots.free_count == 2


def test_a_failed_prefill_gives_its_slots_back() -> None:
    slots = KVSlots(layers=1, slots=2, kv_heads=1, head_dim=2, capacity=64, dtype=torch.float32, device="cpu")
    kernel = SlotEcho(slots)
    kernel.prefill = lambda inputs, taken: (_ for _ in ()).throw(ValueError("unreadable"))  # type: ignore[method-assign]
    runner = GpuRunner(kernel, slots, EagerSteps(kernel.decode, slots), Sampler(2, VOCAB, "cpu"), masks=None)
    with pytest.raises(ValueError):
        runner.join([ticket(5), ticket(5)])
    assert slots.free_count == 2


# -- sampling state ------------------------------------------------------------------------------


def test_greedy_rows_ignore_their_sampled_neighbours_and_penalties_are_per_slot() -> None:
    sampler = Sampler(3, VOCAB, "cpu")
    sampler.join(0, params(), torch.tensor([1]))
    sampler.join(1, params(temperature=1.5), torch.tensor([1]))
    sampler.join(2, params(penalty=100.0), torch.tensor([4]))
    logits = torch.zeros(3, VOCAB)
    logits[:, 4] = 5.0
    logits[:, 7] = 4.0
    picked = sampler.pick(logits, torch.arange(3), active=[0, 1, 2]).tolist()
    assert picked[0] == 4  # greedy
    assert picked[2] == 7  # token 4 was in slot 2's prompt: penalised below token 7
    sampler.leave(1)
    assert float(sampler.temperature[1]) == 0.0  # a free slot samples greedily (its row is garbage)
    sampler.join(1, params(), torch.tensor([2]))
    assert sampler.seen[1].nonzero().flatten().tolist() == [2]  # the last sequence's tokens are forgotten


# -- memory and precision --------------------------------------------------------------------------


def test_batch_sizing_shrinks_the_prefill_budget_before_the_batch() -> None:
    slot = 120 * 2**20  # a 3,072-position GLM-4.6V slot is about 120 MiB
    assert fit_to_memory(60 * GIB, slot, 64, 8192) == (64, 8192)  # a large card: the cap, the full budget
    slots, prefill = fit_to_memory(1.8 * GIB, slot, 64, 8192)  # ~10 GiB cap, ~8 GiB of weights in use
    assert prefill == MIN_PREFILL_TOKENS and 1 <= slots < SMALL_CARD_SLOTS
    assert fit_to_memory(0.4 * GIB, slot, 64, 8192)[0] < 1  # no room: the caller refuses to start


@pytest.mark.parametrize(
    ("card_gib", "cap_gib", "expected"),
    [(80, None, "bf16"), (40, None, "bf16"), (32, None, "nf4"), (24, None, "nf4"), (80, 10, "nf4"), (80, 24, "nf4")],
)
def test_auto_precision_takes_bf16_only_where_a_full_batch_fits_beside_it(
    card_gib: int, cap_gib: float | None, expected: str
) -> None:
    room = usable_memory(total=card_gib * GIB, free=card_gib * GIB, cap_gib=cap_gib)
    per_slot = bytes_per_slot(GLM46V, 3072, 2, GLM46V_VOCAB)
    assert choose_precision(room, GLM46V_PARAMETERS, per_slot, 64, 8192) == expected


def test_auto_precision_for_a_family_without_batching_needs_room_for_one_request() -> None:
    assert choose_precision(72 * GIB, GLM46V_PARAMETERS, 0, 1, 8192) == "bf16"
    assert choose_precision(20 * GIB, GLM46V_PARAMETERS, 0, 1, 8192) == "nf4"


def test_usable_memory_counts_what_others_hold_against_the_cap() -> None:
    assert usable_memory(total=80 * GIB, free=80 * GIB, cap_gib=None) == pytest.approx(72 * GIB)
    assert usable_memory(total=80 * GIB, free=70 * GIB, cap_gib=20) == 10 * GIB
    assert usable_memory(total=80 * GIB, free=5 * GIB, cap_gib=None) < 0  # others already hold more than the share


def test_graph_ladders_step_finely_where_rows_and_windows_cost() -> None:
    assert ladder(128, 1, 16) == [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128]
    assert ladder(2048, 512, 256) == [512, 768, 1024, 1280, 1536, 1792, 2048]
    assert ladder(3, 1, 16) == [1, 2, 3]


def test_rows_hold_their_slot_state() -> None:
    row = Row(ticket(5), slot=2, length=5, position=3)
    row.generated.append(9)
    assert row.ticket.generated == [9]
