"""Watching a GPU from outside the processes that use it: nvidia-smi polling and /proc.

The service benchmark must prove which process holds a CUDA context without creating
one itself, so nothing here imports torch or touches CUDA.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any


class GpuMonitor(threading.Thread):
    """Polls nvidia-smi: peak memory of each compute process, of the whole GPU, and every pid seen."""

    def __init__(self, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.available = shutil.which("nvidia-smi") is not None
        self.peak_mib_by_pid: dict[int, int] = {}
        self.peak_gpu_mib = 0
        self.baseline_gpu_mib = self._gpu_used() if self.available else None
        self.samples = 0
        self._stopped = threading.Event()

    @staticmethod
    def _query(*args: str) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True, text=True)
        return [[cell.strip() for cell in line.split(",")] for line in out.stdout.splitlines() if line.strip()]

    def _gpu_used(self) -> int:
        return int(self._query("--query-gpu=memory.used")[0][0])

    def run(self) -> None:
        while self.available and not self._stopped.is_set():
            for pid, used in self._query("--query-compute-apps=pid,used_memory"):
                if pid.isdigit() and used.isdigit():
                    self.peak_mib_by_pid[int(pid)] = max(self.peak_mib_by_pid.get(int(pid), 0), int(used))
            self.peak_gpu_mib = max(self.peak_gpu_mib, self._gpu_used())
            self.samples += 1
            self._stopped.wait(self.interval_s)

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def gpu_name() -> str:
    """The GPU's name by nvidia-smi (this process never initialises CUDA), or "cpu"."""
    if shutil.which("nvidia-smi") is None:
        return "cpu"
    return GpuMonitor._query("--query-gpu=name")[0][0]


def cuda_handles(pid: int) -> dict[str, Any]:
    """What /proc says about a process's use of the GPU: open /dev/nvidia* files and a mapped libcuda."""
    fds = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/dev/nvidia"):
            fds.append(target)
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {"nvidia_device_files": sorted(set(fds)), "libcuda_mapped": "libcuda.so" in maps}


def mib_to_gib(mib: int) -> float:
    return round(mib / 1024, 2)
