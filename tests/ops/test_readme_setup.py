"""The README's set-up puts `vlmq` on PATH, so its `vlmq ...` examples work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def test_the_readmes_setup_line_puts_the_vlmq_command_on_path() -> None:
    readme = README.read_text()
    setup = re.search(r"\*\*Use the `vlmq` command:\*\*.*?run\s+`([^`]+)`", readme, re.S)
    assert setup is not None, "the README says how to get `vlmq` on PATH"
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if Path(p).resolve() != Path(venv_bin).resolve()
    )
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    assert subprocess.run(["bash", "-c", "command -v vlmq"], env=env, capture_output=True).returncode != 0
    run = subprocess.run(
        ["bash", "-c", f"{setup[1]} && command -v vlmq && vlmq batches --help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.splitlines()[0]).resolve() == (Path(venv_bin) / "vlmq").resolve()
    assert "usage: vlmq batches" in run.stdout
