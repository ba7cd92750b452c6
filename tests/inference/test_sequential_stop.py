"""The one-at-a-time engine stops at the next token once its stop signal is set, not at its next
progress report (those come every 0.5 s)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.inference.conftest import MakeRequest
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, StopGeneration, StopSignal

LONG = GenerationParams(max_new_tokens=1500, temperature=0.0, top_p=1.0, repetition_penalty=1.0)


class _Canceled(StopGeneration):
    pass


def test_a_set_stop_signal_ends_generation_at_the_next_token(
    glm_sequential: HFEngine, make_request: MakeRequest
) -> None:
    stop = StopSignal()
    set_at: list[float] = []

    def cancel() -> None:
        set_at.append(time.monotonic())
        stop.set(_Canceled("job_1"))

    canceler = threading.Timer(0.05, cancel)  # soon after the first report: the next is ~0.45 s away

    def progress(tokens: int, total: int) -> None:
        if tokens and canceler.ident is None:
            canceler.start()

    with pytest.raises(_Canceled):
        glm_sequential.run(make_request("describe", LONG), progress=progress, stop=stop)
    stopped_after = time.monotonic() - set_at[0]
    print(f"\nstopped {stopped_after:.3f} s after the signal was set")
    assert stopped_after < 0.25
