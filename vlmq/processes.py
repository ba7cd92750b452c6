"""Child processes that die with their parent and stop politely."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from shared.parent_death import die_with_parent


def spawn(argv: Sequence[str], env: dict[str, str], pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group, tied to this process's life (SIGTERM if `vlmq up` itself is
    killed); it inherits `pass_fds`."""
    return subprocess.Popen(list(argv), env=env, start_new_session=True, preexec_fn=die_with_parent, pass_fds=pass_fds)


def stop(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after `grace_s`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
