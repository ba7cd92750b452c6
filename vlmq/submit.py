"""`vlmq submit`: send one image to a running vlmq and print the job as JSON."""

from __future__ import annotations

import json
import mimetypes
import sys
from pathlib import Path

import requests


def submit(url: str, image: Path, task: str, prompt: str | None, wait_s: float, api_key: str | None) -> int:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if wait_s > 0:
        headers["Prefer"] = f"wait={wait_s:g}"
    fields = {"task": task, **({"prompt": prompt} if prompt else {})}
    content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    with image.open("rb") as handle:
        response = requests.post(
            f"{url.rstrip('/')}/v1/jobs",
            data=fields,
            files={"image": (image.name, handle, content_type)},
            headers=headers,
            timeout=wait_s + 30,
        )
    body = response.json()
    print(json.dumps(body, indent=2, ensure_ascii=False))
    if response.status_code >= 400:
        print(f"vlmq: the server refused the job ({response.status_code})", file=sys.stderr)
        return 1
    return 0 if body.get("status") != "failed" else 2
