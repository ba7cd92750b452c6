"""The production stack: compose renders (only with its secrets), every service is runnable,
one GPU per worker, TLS in front, and the slim image's code runs without torch."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from shared.celery_app import DELIVER_WEBHOOK_TASK, SWEEP_TASK
from shared.settings import Settings
from tests.support.services import missing
from vlmq.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "REDIS_PASSWORD": "redis-secret",
    "GRAFANA_ADMIN_PASSWORD": "grafana-secret",
    "VLMQ_PUBLIC_URL": "https://vlmq.test",
}


def _compose(tmp_path: Path, env: dict[str, str], *files: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` offline, seeing only `env` (no stray .env or shell variables)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose")
    env_file = tmp_path / "empty.env"
    env_file.touch()
    chosen = [arg for path in files or (ROOT / "docker-compose.yml",) for arg in ("-f", str(path))]
    command = [binary, *chosen, "--project-directory", str(ROOT), "--env-file", str(env_file), "config"]
    return subprocess.run(command, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=60)


def _rendered(tmp_path: Path, *files: Path) -> dict:
    result = _compose(tmp_path, SECRETS, *files)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _gpu_ids(service: dict) -> list[str]:
    return [gpu for device in service["deploy"]["resources"]["reservations"]["devices"] for gpu in device["device_ids"]]


def _beyond_loopback(port: str | dict) -> bool:
    """A published port reachable from other hosts (rendered either as a string or a mapping)."""
    host = port.get("host_ip", "") if isinstance(port, dict) else port.rsplit(":", 2)[0] if port.count(":") == 2 else ""
    return host != "127.0.0.1"


@pytest.mark.parametrize(("secret", "value"), [*((name, None) for name in sorted(SECRETS)), ("REDIS_PASSWORD", "")])
def test_compose_refuses_to_render_without_each_secret(tmp_path: Path, secret: str, value: str | None) -> None:
    """Unset or empty: no default password, and no stack started with one."""
    env = {k: v for k, v in SECRETS.items() if k != secret} | ({} if value is None else {secret: value})
    result = _compose(tmp_path, env)
    assert result.returncode != 0
    assert f"set {secret}" in result.stderr


def test_every_service_restarts_runs_a_real_command_and_has_production_settings(tmp_path: Path) -> None:
    services = _rendered(tmp_path)["services"]
    assert set(services) == {
        *("proxy", "postgres", "redis", "migrate", "web", "light-worker", "gpu-worker-0", "fetch-model"),
        *("prometheus", "grafana"),
    }
    for name, service in services.items():
        assert service.get("restart") == ("no" if name == "migrate" else "unless-stopped") or name == "fetch-model"
        command = service.get("command", [])
        if command[:1] != ["vlmq"]:
            continue
        _parser().parse_args(command[1:])
        env = {key.removeprefix("VLMQ_").lower(): value for key, value in service["environment"].items()}
        settings = Settings(**env)
        assert settings.environment == "production"
        assert settings.redis_url == "redis://:redis-secret@redis:6379/0"
        assert "pg-secret" in settings.sqlalchemy_url
        assert settings.public_url == "https://vlmq.test"
    # The slim image for everything but the GPU worker; nobody turns the hub off behind the user's back.
    assert {name for name, s in services.items() if s.get("build", {}).get("target") == "gpu"} == {
        "gpu-worker-0",
        "fetch-model",
    }
    assert "HF_HUB_OFFLINE" not in json.dumps(services)
    assert not re.search(r"^ENV .*HF_HUB_OFFLINE", (ROOT / "Dockerfile").read_text(), re.M)
    # Only the TLS proxy is published beyond loopback; the GPU worker may finish its batch when stopped.
    published = {name for name, service in services.items() if any(map(_beyond_loopback, service.get("ports", [])))}
    assert published == {"proxy"}
    # The monitoring profile loads the shipped rules and dashboard.
    assert any(volume.startswith(f"{ROOT}/deploy/prometheus:") for volume in services["prometheus"]["volumes"])
    assert any("vlmq-dashboard.json" in volume for volume in services["grafana"]["volumes"])
    assert services["gpu-worker-0"]["stop_grace_period"] == "11m"
    assert _gpu_ids(services["gpu-worker-0"]) == ["0"]
    assert "--requirepass" in " ".join(services["redis"]["command"])
    assert "--appendonly yes" in " ".join(services["redis"]["command"])


def test_generated_override_gives_each_gpu_its_own_worker(tmp_path: Path) -> None:
    script = [sys.executable, str(ROOT / "deploy" / "gpu_workers.py")]
    generated = tmp_path / "docker-compose.gpus.yml"
    result = subprocess.run([*script, "0", "1", "2", "GPU-8f3c2a"], capture_output=True, text=True, check=True)
    generated.write_text(result.stdout)
    services = _rendered(tmp_path, generated)["services"]
    workers = {name: _gpu_ids(s) for name, s in services.items() if name.startswith("gpu-worker-")}
    assert workers == {f"gpu-worker-{i}": [i] for i in ("0", "1", "2", "GPU-8f3c2a")}
    assert all(services[name]["restart"] == "unless-stopped" for name in workers)
    for bad in (["0", "0"], ["all"]):
        refused = subprocess.run([*script, *bad], capture_output=True, text=True)
        assert refused.returncode == 2
        assert "GPU" in refused.stderr


def test_proxy_terminates_tls_and_hides_metrics() -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        missing("caddy")
    env = {"PATH": os.environ["PATH"], "VLMQ_SITE_ADDRESS": "vlmq.test", "VLMQ_TLS": "internal"}
    command = [caddy, "adapt", "--adapter", "caddyfile", "--config", str(ROOT / "deploy" / "Caddyfile")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    config = json.loads(result.stdout)
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    assert config["apps"]["tls"]["automation"]["policies"][0]["issuers"] == [{"module": "internal"}]
    text = result.stdout
    assert '"dial":"web:8000"' in text
    assert '"keep_alive":{"idle_timeout":60000000000}' in text, "idles out before the web's 75 s keep-alive"
    assert re.search(r'"static_response","status_code":404.*"path":\["/metrics"\]', text)


def test_web_and_light_worker_run_without_the_inference_extra(tmp_path: Path, redis_url: str) -> None:
    """What the slim image installs (the base dependencies) is all the web and light worker import."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    inference = [re.split(r"[<>=\[ ]", spec)[0] for spec in project["optional-dependencies"]["inference"]]
    base = {re.split(r"[<>=\[ ]", spec)[0] for spec in project["dependencies"]}
    assert "torch" in inference
    assert not base & set(inference)
    assert re.search(r"AS web\n(?:(?!^FROM ).*\n)*RUN pip install \. ", (ROOT / "Dockerfile").read_text(), re.M)
    script = f"""
import sys
for name in {[name.replace("-", "_") for name in inference]!r}:
    sys.modules[name] = None  # importing any of them raises ImportError
from shared.settings import Settings
from web.app import create_app
from worker.app import create_worker_app
import vlmq.web_server, vlmq.cli, shared.migrate, worker.sweeper, worker.webhooks.delivery
settings = Settings(data_dir={str(tmp_path)!r}, redis_url={redis_url!r})
assert create_app(settings).test_client().get("/healthz").status_code == 200
print(sorted(create_worker_app(settings).tasks))
assert "torch" not in sys.modules or sys.modules["torch"] is None
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert SWEEP_TASK in result.stdout
    assert DELIVER_WEBHOOK_TASK in result.stdout
