"""Streaming pieces of an answer: rendered like the result, redacted, never ahead of it."""

from __future__ import annotations

from worker.inference import redaction
from worker.inference.batched import BatchedEngine
from worker.inference.engine import HFEngine
from worker.inference.text_deltas import TextDeltas


def test_pieces_hold_back_the_tail_and_never_leak_a_phone_number_being_written() -> None:
    answer = "Call us on +1 415-555-0100 today, or visit the shop on Main Street any weekday."
    deltas = TextDeltas(lambda ids: redaction.redact_text(answer[: len(ids)])[0], holdback=40)
    pieces = [deltas.update(list(range(n))) for n in range(1, len(answer) + 1)]
    sent = "".join(pieces)
    assert sent == deltas.sent
    assert "415" not in sent and "0100" not in sent
    assert redaction.redact_text(answer)[0].startswith(sent)
    assert len(sent) == len(redaction.redact_text(answer)[0]) - 40


def test_text_that_changes_behind_what_was_sent_pauses_the_pieces() -> None:
    renders = iter(["a" * 50, "b" * 60, "a" * 70])
    deltas = TextDeltas(lambda ids: next(renders), holdback=5)
    assert deltas.update([1]) == "a" * 45
    assert deltas.update([1, 2]) == ""  # rewritten: nothing new can be trusted
    assert deltas.update([1, 2, 3]) == "a" * 20


def test_both_engines_stream_a_prefix_of_their_answer(
    glm_fp32: BatchedEngine, glm_sequential: HFEngine, make_request
) -> None:
    from worker.inference.engine_contract import GenerationParams

    request = make_request("describe", GenerationParams(160, 0.0, 1.0, 1.0))
    for engine in (glm_fp32, glm_sequential):
        pieces: list[str] = []
        result = engine.run(request, on_text=pieces.append)
        assert pieces and result.text.startswith("".join(pieces))
