"""`StopSignal`: set once from any thread; listeners hear the first reason exactly once."""

from __future__ import annotations

import threading

from worker.inference.engine_contract import StopGeneration, StopSignal


class _Canceled(StopGeneration):
    pass


class _TimedOut(StopGeneration):
    pass


def test_the_first_reason_wins_and_each_listener_hears_it_once() -> None:
    stop = StopSignal()
    heard: list[StopGeneration] = []
    stop.listen(heard.append)
    assert stop.reason is None and heard == []
    first = _Canceled("job_1")
    stop.set(first)
    stop.set(_TimedOut("job_1"))
    assert stop.reason is first
    assert heard == [first]


def test_a_listener_added_after_the_signal_is_set_hears_it_at_once() -> None:
    stop = StopSignal()
    reason = _TimedOut("job_1")
    stop.set(reason)
    heard: list[StopGeneration] = []
    stop.listen(heard.append)
    assert heard == [reason]


def test_racing_setters_leave_one_reason_heard_once() -> None:
    stop = StopSignal()
    heard: list[StopGeneration] = []
    stop.listen(heard.append)
    reasons = [_Canceled(f"job_{n}") for n in range(16)]
    threads = [threading.Thread(target=stop.set, args=(reason,)) for reason in reasons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(heard) == 1 and heard[0] is stop.reason and stop.reason in reasons
