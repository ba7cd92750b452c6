"""`vlmq up` shows what a user needs: its own lines and the ready line near the top, no third-party warnings,
and nothing more while it idles; errors are never filtered."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from shared.quiet_logs import DropMessages, silence_known_noise
from tests.support.live_service import vlmq_up, wait_for_line
from worker.inference.engine_contract import Engine

# What used to bury the ready line: Celery's root warning and banner, Redis's start-up, bitsandbytes' kernel
# search, transformers' FutureWarning, alembic's plugins, and an access line per readiness poll.
NOISE = re.compile(
    r"Warning|WARNING|\[tasks\]|-------------- |oO0OoO0|gemm_4bit_forward|setup plugin|GET /readyz|Sending due task"
)


@pytest.mark.slow
def test_start_up_reaches_the_ready_line_quickly_and_idles_quietly(
    tmp_path: Path, model_data_dir: Path, engine: Engine
) -> None:
    # Housekeeping every second, so a quiet idle minute is a quiet 60 rounds of it.
    overrides = {"sweep_interval_s": "1", "webhook_poll_interval_s": "1"}
    with vlmq_up(tmp_path, model_data_dir, **overrides):
        log = tmp_path / "up.log"
        wait_for_line(log, r"gpu@\S+ ready\.", 60)  # the GPU worker's last start-up line
        started = log.read_text().splitlines()
        time.sleep(8)
        idle = log.read_text().splitlines()[len(started) :]
    ready = next(index for index, line in enumerate(started) if "vlmq: ready at http://" in line)
    assert ready < 30, "\n".join(started)
    assert not [line for line in started if NOISE.search(line)], "\n".join(started)
    assert any("no VLMQ_MODEL set" in line for line in started[:ready])  # the noise warning stays
    assert idle == [], "\n".join(idle)


def test_errors_and_unlisted_lines_pass_the_filters() -> None:
    silence_known_noise()
    drop = DropMessages(r"^Task vlmq\.sweep\[[^]]*\] succeeded in ")

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("celery.app.trace", level, __file__, 1, message, None, None)

    assert not drop.filter(record(logging.INFO, "Task vlmq.sweep[1] succeeded in 0.01s: 0"))
    assert drop.filter(record(logging.ERROR, "Task vlmq.sweep[1] succeeded in 0.01s: 0"))
    assert drop.filter(record(logging.INFO, "Task vlmq.run_job[1] succeeded in 2.1s: None"))
    filters = logging.getLogger("celery.app.trace").filters
    assert sum(isinstance(existing, DropMessages) for existing in filters) == 1  # installed once, however often
