"""Signatures verify with the published `standardwebhooks` library; secrets rotate without a gap."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.clock import utcnow
from shared.settings import Settings
from shared.webhooks.tenant_secrets import current_secret, generate_secret, rotate
from vlmq.cli import main
from vlmq.webhooks_listen import make_server
from worker.webhooks.signing import SignatureError, signed_headers, signing_secrets, verify

BODY = b'{"type":"job.completed","timestamp":"2026-11-24T10:00:00Z","data":{"id":"job_1"}}'


def test_signatures_verify_with_the_standardwebhooks_library_for_every_listed_secret() -> None:
    old, new, stranger = generate_secret(), generate_secret(), generate_secret()
    assert old.startswith("whsec_") and old != new
    headers = signed_headers([new, old], "msg_1", int(time.time()), BODY)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
        verify(secret, headers, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)


def test_verify_rejects_tampering_replays_and_missing_headers() -> None:
    secret = generate_secret()
    headers = signed_headers([secret], "msg_1", int(time.time()), BODY)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(secret, headers, BODY.replace(b"job_1", b"job_2"))
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(secret, {**headers, "webhook-id": "msg_2"}, BODY)
    with pytest.raises(SignatureError, match="replay"):
        verify(secret, headers, BODY, now=time.time() + 600)
    with pytest.raises(SignatureError, match="missing"):
        verify(secret, {"webhook-id": "msg_1"}, BODY)


def test_tenant_secret_is_made_once_and_rotates_with_a_window(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    now = utcnow()
    with sessions.begin() as session:
        first = current_secret(session, settings, "default", now)
        assert current_secret(session, settings, "default", now) == first
    with sessions.begin() as session:
        second = rotate(session, settings, "default", now)
    window = timedelta(seconds=settings.webhook_secret_rotation_s)
    with sessions.begin() as session:
        assert signing_secrets(session, settings, "default", now) == [second, first]
        assert signing_secrets(session, settings, "default", now + window + timedelta(seconds=1)) == [second]


def test_configured_secret_is_adopted_and_a_change_rotates(settings: Settings, sessions: sessionmaker[Session]) -> None:
    now = utcnow()
    configured = generate_secret()
    with sessions.begin() as session:
        generated = current_secret(session, settings, "default", now)
    pinned = settings.model_copy(update={"webhook_secret": configured})
    with sessions.begin() as session:
        assert signing_secrets(session, pinned, "default", now) == [configured, generated]
        with pytest.raises(ValueError, match="VLMQ_WEBHOOK_SECRET"):
            rotate(session, pinned, "default", now)


@pytest.fixture
def listener() -> Iterator[tuple[str, str]]:
    secret = generate_secret()
    server = make_server("127.0.0.1", 0, secret)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", secret
    server.shutdown()
    server.server_close()


def test_listen_prints_verified_deliveries_and_rejects_forgeries(
    listener: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, secret = listener
    good = requests.post(url, data=BODY, headers=signed_headers([secret], "msg_7", int(time.time()), BODY), timeout=5)
    assert good.status_code == 204
    forged_headers = signed_headers([generate_secret()], "msg_8", int(time.time()), BODY)
    assert requests.post(url, data=BODY, headers=forged_headers, timeout=5).status_code == 401
    out, err = capsys.readouterr()
    assert json.loads(out) == {"webhook-id": "msg_7", **json.loads(BODY)}
    assert "rejected msg_8: no signature matches" in err


def test_cli_prints_the_secret_and_refuses_internal_endpoints(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VLMQ_DATABASE_URL", settings.sqlalchemy_url)
    monkeypatch.setenv("VLMQ_DATA_DIR", str(settings.data_dir))
    assert main(["webhooks", "secret"]) == 0
    secret = capsys.readouterr().out.strip()
    assert main(["webhooks", "secret"]) == 0
    assert capsys.readouterr().out.strip() == secret
    assert main(["webhooks", "endpoint", "--url", "http://10.0.0.8/hooks"]) == 2
    assert "10.0.0.8, a private address" in capsys.readouterr().err
    assert main(["webhooks", "endpoint", "--tenant", "nobody", "--url", "http://93.184.216.34/"]) == 2
    assert "no tenant 'nobody'" in capsys.readouterr().err
