#!/usr/bin/env python3
"""Print docker-compose.yml with one GPU worker service per given GPU id.

    python3 deploy/gpu_workers.py 0 1 2 3 > docker-compose.gpus.yml
    docker compose -f docker-compose.gpus.yml up -d

`docker compose --scale` cannot pin replicas to distinct GPUs (they may share one), so
each GPU gets its own `gpu-worker-N` service with an explicit device id. The block between
the `# gpu-workers:` markers is replaced; everything else is copied unchanged. Only the
standard library: it runs on any host with Python 3, without vlmq installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN = "  # gpu-workers:"
END = "  # gpu-workers: end"
SERVICE = """  gpu-worker-{id}:
    <<: *gpu-worker
    deploy:
      resources: {{ reservations: {{ devices: [{{ driver: nvidia, device_ids: ["{id}"], capabilities: [gpu] }}] }} }}
"""


def render(compose: str, gpu_ids: list[str]) -> str:
    """`compose` with its GPU worker block replaced by one service per id."""
    lines = compose.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(BEGIN) and not line.startswith(END)]
    ends = [i for i, line in enumerate(lines) if line.startswith(END)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError("the compose file must hold one '# gpu-workers:' ... '# gpu-workers: end' block")
    services = "".join(SERVICE.format(id=gpu_id) for gpu_id in gpu_ids)
    return "".join([*lines[: starts[0] + 1], services, *lines[ends[0] :]])


def _gpu_ids(values: list[str]) -> list[str]:
    for value in values:
        if not re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+", value):
            raise argparse.ArgumentTypeError(f"{value!r} is not a GPU index (0, 1, ...) or UUID (GPU-...)")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError("each GPU id may appear once")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gpu_ids", nargs="+", help="GPU indexes or UUIDs as nvidia-smi -L shows them")
    parser.add_argument("--compose", type=Path, default=Path(__file__).resolve().parents[1] / "docker-compose.yml")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.compose.read_text(), _gpu_ids(args.gpu_ids)))
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
