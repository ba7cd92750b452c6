"""schemathesis fuzzes a live server against its own `/openapi.json`, with auth off and on.

A bounded run (few examples per operation, one worker, a fixed seed) of every check,
configured in `tests/api/schemathesis.toml`; any failure fails the test with schemathesis's
report, which says how to reproduce it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared import ssrf
from shared.auth import create_api_key
from shared.db import make_engine, make_session_factory
from shared.migrate import upgrade_to_head
from shared.settings import Settings
from tests.support.services import serving
from web.api import job_input
from web.api.remote_images import ByteBudget
from web.app import create_app
from web.errors import ApiError

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("st")


@pytest.fixture(autouse=True)
def no_remote_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated URLs (image_url, webhook) never leave this machine: names do not resolve, downloads fail."""

    def unresolvable(host: str, port: int) -> list[str]:
        raise OSError(f"[Errno -2] Name or service not known: {host}")

    def unreachable(url: str, settings: Settings, budget: ByteBudget | None = None) -> bytes:
        raise ApiError("image_fetch_failed", "image_url could not be fetched: remote hosts are off in this test")

    monkeypatch.setattr(ssrf, "resolve", unresolvable)
    monkeypatch.setattr(job_input, "fetch_image", unreachable)


@pytest.mark.parametrize("auth_enabled", [False, True], ids=["auth-off", "auth-on"])
def test_schemathesis_finds_no_failure(
    auth_enabled: bool, redis_url: str, model_data_dir: Path, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'vlmq.db'}"
    upgrade_to_head(database_url)
    settings = Settings(
        data_dir=model_data_dir,
        database_url=database_url,
        redis_url=redis_url,
        auth_enabled=auth_enabled,
        max_wait_s=1,
        # The tenant's rate limit would decide, by how fast this machine is, which requests get past 429 and so
        # which paths the seeded run reaches (under load, different ones); tests/api/test_tenant_limits.py tests it.
        rate_limit="1000/second",
    )
    headers: list[str] = []
    if auth_enabled:
        engine = make_engine(database_url)
        with make_session_factory(engine).begin() as session:
            headers = ["-H", f"Authorization: Bearer {create_api_key(session, 'fuzz', 'Fuzz')}"]
        engine.dispose()
    app = create_app(settings)
    with serving(app) as url:
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(CONFIG),
                "run",
                f"{url}/openapi.json",
                *headers,
                "--max-examples=5",
                "--workers=1",
                "--seed=1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        )
    app.extensions["vlmq"].engine.dispose()
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-4000:]
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-4000:]
