"""The batching loop on the tiny GLM checkpoint: rows join and leave a running batch, each
with its own settings, and a batch answers exactly what one-at-a-time `generate()` answers."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from shared.settings import Settings
from worker.heartbeat import JobCanceled
from worker.inference import load_engine
from worker.inference.batched import BatchedEngine
from worker.inference.batching import admission as admission_module
from worker.inference.batching.rows import Ticket
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, InferenceError, InferenceRequest, StopSignal

COLOR_SCHEMA = {
    "type": "object",
    "properties": {"color": {"type": "string", "minLength": 1, "maxLength": 6}},
    "required": ["color"],
    "additionalProperties": False,
}


def params(tokens: int, temperature: float = 0.0, penalty: float = 1.0) -> GenerationParams:
    return GenerationParams(max_new_tokens=tokens, temperature=temperature, top_p=0.9, repetition_penalty=penalty)


def photo(color: str, size: tuple[int, int] = (96, 64)) -> Image.Image:
    return Image.new("RGB", size, color)


@pytest.fixture(scope="module")
def three_slots(data_dir: Path, glm_dir: Path) -> BatchedEngine:
    """Fewer slots than requests, so rows must join as others leave."""
    engine = load_engine(Settings(data_dir=data_dir, quantization="fp32", device="cpu", gpu_max_batch=3))
    assert isinstance(engine, BatchedEngine) and engine.max_batch == 3
    return engine


def together(engine: BatchedEngine, requests: list[InferenceRequest], **kwargs) -> list:
    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(lambda r: engine.run(r, **kwargs), requests))


def test_a_batch_answers_what_generate_answers_one_at_a_time(
    three_slots: BatchedEngine, glm_sequential: HFEngine
) -> None:
    requests = [
        InferenceRequest("describe", photo("red"), params(12)),
        InferenceRequest("ocr", photo("blue", (64, 96)), params(30, penalty=1.3)),
        InferenceRequest("ask", photo("green"), params(7), prompt="What is it?"),
        InferenceRequest("copy", photo("white"), params(25, penalty=1.1), options={"channel": "title"}),
        InferenceRequest("describe", photo("black", (128, 96)), params(18)),
        InferenceRequest("attributes", photo("gray"), params(40), options={"schema": COLOR_SCHEMA}),
        InferenceRequest("describe", photo("yellow"), params(3)),
    ]
    steps_before = three_slots.scheduler.stats.steps
    batched = together(three_slots, requests)
    steps = three_slots.scheduler.stats.steps - steps_before
    alone = [glm_sequential.run(request) for request in requests]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert [r.usage["prompt_tokens"] for r in batched] == [r.usage["prompt_tokens"] for r in alone]
    assert [r.finish_reason for r in batched[:5]] == ["length"] * 5
    assert batched[5].data is not None and batched[5].finish_reason == "stop"
    # Seven requests, three slots: decode steps were shared, so far fewer than the tokens made.
    assert steps < sum(r.usage["completion_tokens"] for r in batched) * 2 // 3


def test_rows_keep_their_own_sampling_and_constraints(three_slots: BatchedEngine) -> None:
    greedy = InferenceRequest("describe", photo("red"), params(20))
    solo = three_slots.run(greedy).text
    mixed = [
        greedy,
        InferenceRequest("describe", photo("red"), params(20, temperature=1.5, penalty=1.2)),
        InferenceRequest("attributes", photo("red"), params(60, temperature=1.0), options={"schema": COLOR_SCHEMA}),
    ]
    results = together(three_slots, mixed)
    assert results[0].text == solo  # a greedy row is unaffected by its sampled neighbours
    assert 0 < results[1].usage["completion_tokens"] <= 20  # a sampled row may draw an end token early
    jsonschema.validate(results[2].data, COLOR_SCHEMA)


def test_canceling_one_row_frees_its_slot_and_spares_the_others(
    three_slots: BatchedEngine, glm_sequential: HFEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock a second ahead at every reading: every token is reported, so the cancel lands at
    # token 5 however fast this machine decodes (on the real clock, 400 tiny steps can finish
    # before the first half-second report).
    monkeypatch.setattr(three_slots.scheduler, "clock", itertools.count(0.0, 1.0).__next__)
    keep = [InferenceRequest("describe", photo(c), params(40)) for c in ("red", "blue")]
    doomed = InferenceRequest("describe", photo("green"), params(400))
    seen: list[int] = []

    def cancel_after_five(tokens: int, total: int) -> None:
        seen.append(tokens)
        if tokens >= 5:
            raise JobCanceled("job_doomed")

    with ThreadPoolExecutor(3) as pool:
        kept = [pool.submit(three_slots.run, r) for r in keep]
        canceled = pool.submit(three_slots.run, doomed, cancel_after_five)
        with pytest.raises(JobCanceled):
            canceled.result()
        assert [f.result().text for f in kept] == [glm_sequential.run(r).text for r in keep]
    assert max(seen) == 5
    assert three_slots.scheduler.free_slots == 3


def test_a_pushed_cancel_frees_the_slot_at_the_next_step(three_slots: BatchedEngine) -> None:
    """A stop signal set from another thread ends the row at the loop's next step boundary, with no
    progress report needed, and its slot is free again."""
    scheduler = three_slots.scheduler
    signal = StopSignal()
    started = threading.Event()

    def note_start(tokens: int, _total: int) -> None:
        if tokens == 0:
            started.set()

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            three_slots.run, InferenceRequest("describe", photo("red"), params(1500)), note_start, None, signal
        )
        assert started.wait(60)
        while scheduler.stats.steps < 3:
            threading.Event().wait(0.002)
        steps_at_cancel = scheduler.stats.steps
        signal.set(JobCanceled("job_pushed"))
        with pytest.raises(JobCanceled):
            running.result(timeout=60)
    assert scheduler.stats.steps - steps_at_cancel <= 2  # the step in flight, at most one more
    assert scheduler.free_slots == 3 and not scheduler.rows


def test_a_request_that_cannot_run_fails_alone(data_dir: Path, glm_dir: Path, glm_sequential: HFEngine) -> None:
    engine = load_engine(
        Settings(data_dir=data_dir, quantization="fp32", device="cpu", gpu_max_batch=2, gpu_max_seq_tokens=256)
    )
    good = InferenceRequest("describe", photo("red"), params(10))
    too_long = InferenceRequest("describe", photo("red"), params(2000))
    broken = engine.base.prepare(InferenceRequest("describe", photo("blue"), params(10)))
    broken.inputs["pixel_values"] = broken.inputs["pixel_values"][:4]  # fewer patches than image tokens
    with ThreadPoolExecutor(3) as pool:
        staged = engine.scheduler.runner.stage(broken.inputs)
        bad = pool.submit(lambda: engine.scheduler.submit(Ticket(staged, params(10))).wait())
        long = pool.submit(engine.run, too_long)
        fine = pool.submit(engine.run, good)
        with pytest.raises(InferenceError) as unreadable:
            bad.result()
        with pytest.raises(InferenceError) as oversized:
            long.result()
        assert fine.result().text == glm_sequential.run(good).text
    assert unreadable.value.code == "inference_error"
    assert oversized.value.code == "input_too_long" and "256-token" in oversized.value.message
    engine.scheduler.close()


def test_interactive_requests_are_admitted_before_waiting_bulk(data_dir: Path, glm_dir: Path) -> None:
    engine = load_engine(Settings(data_dir=data_dir, quantization="fp32", device="cpu", gpu_max_batch=1))
    admitted: list[str] = []
    running = threading.Event()

    def watch(name: str) -> Callable[[int, int], None]:
        def progress(tokens: int, total: int) -> None:
            if tokens == 0:
                admitted.append(name)
            if tokens > 0:
                running.set()

        return progress

    def submit(name: str, interactive: bool = False, tokens: int = 4):
        request = InferenceRequest("describe", photo("red"), params(tokens), interactive=interactive)
        return pool.submit(engine.run, request, watch(name))

    with ThreadPoolExecutor(4) as pool:
        first = submit("bulk-1", tokens=200)
        running.wait(60)
        later = [submit("bulk-2"), submit("bulk-3")]
        while engine.scheduler.waiting < 2:  # both bulk requests wait before the interactive one comes
            threading.Event().wait(0.01)
        urgent = submit("chat", interactive=True)
        for future in [first, *later, urgent]:
            future.result()
    assert admitted[:2] == ["bulk-1", "chat"]  # the two bulk requests (in either order) waited behind it
    assert sorted(admitted[2:]) == ["bulk-2", "bulk-3"]
    engine.scheduler.close()


def test_bulk_joins_at_a_paced_rate_while_an_interactive_row_decodes(
    data_dir: Path, glm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admission_module, "PACED_BURST_TOKENS", 1)  # no saved-up credit: one ticket, then repay
    engine = load_engine(Settings(data_dir=data_dir, quantization="fp32", device="cpu", gpu_max_batch=8))
    joined_at: dict[str, int] = {}

    def note_join(name: str) -> Callable[[int, int], None]:
        def progress(tokens: int, _total: int) -> None:
            if tokens == 0:  # reported on admission, from the loop's thread
                joined_at.setdefault(name, engine.scheduler.stats.steps)

        return progress

    def tickets(prefix: str, interactive: bool = False, tokens: int = 20) -> list[Ticket]:
        made = []
        for i in range(3):
            prepared = engine.base.prepare(InferenceRequest("describe", photo("blue"), params(tokens)))
            progress = note_join(f"{prefix}-{i}")
            staged = engine.scheduler.runner.stage(prepared.inputs)
            made.append(Ticket(staged, params(tokens), progress=progress, interactive=interactive))
        return made

    chat = tickets("chat", interactive=True, tokens=300)[0]
    paced, unpaced = tickets("paced"), tickets("unpaced")
    engine.scheduler.submit(chat)
    while len(chat.generated) < 2:  # the interactive row decodes
        threading.Event().wait(0.005)
    for ticket in paced:  # all three wait at the same step boundary
        engine.scheduler.submit(ticket)
    for ticket in [*paced, chat]:
        assert ticket.wait(120) is not None
    for ticket in unpaced:  # no interactive row now: they join together
        engine.scheduler.submit(ticket)
    for ticket in unpaced:
        assert ticket.wait(120) is not None
    engine.scheduler.close()

    gap = (paced[0].prompt_tokens - 1) // admission_module.BULK_TOKENS_PER_PACED_STEP
    steps = sorted(joined_at[f"paced-{i}"] for i in range(3))
    assert gap >= 1 and steps[1] - steps[0] >= gap and steps[2] - steps[1] >= gap
    assert len({joined_at[f"unpaced-{i}"] for i in range(3)}) == 1


def test_bulk_tickets_gather_into_one_prefill_while_rows_decode(
    data_dir: Path, glm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 slots gather bulk groups of 2: a lone ticket waits for a second, or for GATHER_STEPS steps."""
    engine = load_engine(Settings(data_dir=data_dir, quantization="fp32", device="cpu", gpu_max_batch=16))
    scheduler = engine.scheduler
    joined_at: dict[str, int] = {}

    def ticket(name: str, tokens: int) -> Ticket:
        def progress(done: int, _total: int) -> None:
            if done == 0:  # reported on admission, from the loop's thread
                joined_at.setdefault(name, scheduler.stats.steps)

        prepared = engine.base.prepare(InferenceRequest("describe", photo("blue"), params(tokens)))
        return Ticket(scheduler.runner.stage(prepared.inputs), params(tokens), progress=progress)

    long_row = ticket("long", 1500)
    scheduler.submit(long_row)
    while len(long_row.generated) < 2:
        threading.Event().wait(0.005)
    monkeypatch.setattr(admission_module, "GATHER_STEPS", 10**6)
    first, second = ticket("first", 4), ticket("second", 4)
    scheduler.submit(first)
    steps_before = scheduler.stats.steps
    while scheduler.stats.steps < steps_before + 10:  # the first ticket waits for its group
        threading.Event().wait(0.005)
    assert "first" not in joined_at and scheduler.waiting == 1
    prefills = scheduler.stats.prefills
    scheduler.submit(second)
    assert first.wait(60) is not None and second.wait(60) is not None
    assert joined_at["first"] == joined_at["second"] and scheduler.stats.prefills == prefills + 1

    monkeypatch.setattr(admission_module, "GATHER_STEPS", 5)
    lone = ticket("lone", 4)
    scheduler.submit(lone)
    assert lone.wait(60) is not None
    assert joined_at["lone"] - lone.queued_at_step >= 5
    assert len(long_row.generated) < 1500  # the batch was decoding all along
    scheduler.close()
