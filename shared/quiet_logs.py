"""Known-harmless third-party output, silenced where it is produced.

So that start-up ends at a ready line a user can find, and an idle service writes
nothing. Each entry names one message a library emits and why it says nothing a vlmq
user can act on; a record at ERROR or above is never dropped, and anything not listed
here is left alone. `shared.log_format.configure_logging` installs these in every
vlmq process (the GPU worker inherits them across its fork).
"""

from __future__ import annotations

import logging
import re
import warnings

# (category, start of the message) of Python warnings.
HARMLESS_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # Celery on a worker run as root (a container, a dev box); it matters for pickle, and vlmq sends only JSON.
    (Warning, r"You're running the worker with superuser privileges"),
    # transformers' own model code passes the argument it deprecates; nothing vlmq calls.
    (FutureWarning, r"`past_key_values` is deprecated"),
)

# Logger name → messages (regular expressions, searched) dropped below ERROR.
HARMLESS_LOG_LINES: dict[str, str] = {
    # On CPU, bitsandbytes looks for an optional faster kernel on the hub (offline here) and uses its own.
    "bitsandbytes.backends.cpu.ops": r"Failed to load CPU gemm_4bit_forward from kernels-community",
    # The same lookup through the `kernels` library: offline, it skips the hub's trust check (and then the kernel).
    "kernels._internals.hf_hub": r"^Skipping publisher trust check for 'kernels-community/",
    # The light worker's housekeeping, every few seconds: the sweeper logs what it recovers itself.
    "celery.beat": r"Sending due task (sweep|dispatch-webhooks) ",
    "celery.worker.strategy": r"^Task vlmq\.(sweep|dispatch_webhooks)\[[^]]*\] received$",
    "celery.app.trace": r"^Task vlmq\.(sweep|dispatch_webhooks)\[[^]]*\] succeeded in ",
    # Alembic's set-up chatter on every start; the migrations it runs are still logged.
    "alembic.runtime.plugins": r"^setup plugin ",
    "alembic.runtime.migration": r"^(Context impl |Will assume )",
    # `vlmq eval`'s charts: matplotlib building its font cache on first use, and looking for fonts a headless
    # server lacks (it falls back to its bundled DejaVu); a temporary cache when HOME is not writable.
    "matplotlib.font_manager": r"^(findfont: |generated new fontManager|Matplotlib is building the font cache)",
    "matplotlib": r"^Matplotlib created a temporary cache directory",
}


class DropMessages(logging.Filter):
    """Drops one logger's records matching `pattern`, unless they are errors."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not self.pattern.search(record.getMessage())


def silence_known_noise() -> None:
    """Install the filters above (again is harmless: each logger keeps one)."""
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, pattern in HARMLESS_LOG_LINES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(existing, DropMessages) for existing in logger.filters):
            logger.addFilter(DropMessages(pattern))
