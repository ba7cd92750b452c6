"""The page cookie: unreadable by scripts, no use to the API without its CSRF token; pages send security headers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job
from shared.settings import Settings
from tests.support.factories import api_key, bearer
from tests.support.helpers import image_bytes, submit
from tests.support.services import serving
from web.app import create_app
from web.page_session import KEY_COOKIE, csrf_token

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def auth_app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings.model_copy(update={"auth_enabled": True}))
    yield app
    app.extensions["vlmq"].engine.dispose()


@pytest.fixture
def key(sessions: sessionmaker[Session]) -> str:
    return api_key(sessions, "shop-a")


def attacker_app(victim_url: str, job_id: str) -> Flask:
    """A page on another port of the same host: same-site, so SameSite cookies still go with its requests."""
    attacker = Flask("attacker")

    @attacker.get("/")
    def page() -> str:
        return f"""<!doctype html><script>
        window.results = {{}};
        (async () => {{
          const read = document.cookie;
          // no-cors: the requests go out with the cookie; their answers stay opaque to this page.
          const options = {{method: "POST", credentials: "include", mode: "no-cors"}};
          await fetch("{victim_url}/v1/jobs/{job_id}/cancel", options);
          const form = new FormData();
          form.append("task", "describe");
          await fetch("{victim_url}/upload", {{...options, body: form}});
          window.results = {{read, sent: true}};
        }})().catch((error) => {{ window.results = {{error: String(error)}}; }});
        </script>"""

    return attacker


def test_a_page_of_another_origin_cannot_read_or_use_the_key(
    auth_app: Flask, key: str, browser_page, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    job_id = submit(auth_app.test_client(), image_bytes(), task="describe", headers=bearer(key)).get_json()["id"]
    page = browser_page
    with serving(auth_app) as victim, serving(attacker_app(victim, job_id)) as attacker:
        page.goto(victim + "/")
        page.fill("#api-key", key)
        page.click("#key-form button")
        page.wait_for_selector("#upload-form")
        assert page.evaluate("document.cookie") == "", "scripts cannot read the key"
        (cookie,) = page.context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (KEY_COOKIE, True, "Strict")
        # The victim's own upload form still works with the cookie and its CSRF token.
        photo = tmp_path / "mug.png"
        photo.write_bytes(image_bytes(color="blue"))
        page.set_input_files("#image", str(photo))
        page.click("button[type=submit]")
        page.wait_for_url("**/jobs/job_*")
        page.goto(attacker + "/")
        page.wait_for_function("Object.keys(window.results).length > 0")
        results = page.evaluate("window.results")
    assert results == {"read": "", "sent": True}
    with sessions() as session:
        assert session.get(Job, job_id).status == "queued", "the other origin canceled the job"
        assert session.query(Job).count() == 2, "the other origin uploaded a job"


def test_the_api_takes_the_page_cookie_only_with_its_csrf_token(auth_app: Flask, key: str, png: bytes) -> None:
    client: FlaskClient = auth_app.test_client()
    client.set_cookie(KEY_COOKIE, key)
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers={"X-CSRF-Token": csrf_token("vlmq_other")}).status_code == 401
    assert client.get("/").status_code == 200
    # What the page's buttons and image links send: the token in a header, or in an image's query.
    job = client.post("/upload", data={"task": "describe", "image": (io.BytesIO(png), "a.png")},
                      headers={"X-CSRF-Token": csrf_token(key)}).get_json()  # fmt: skip
    assert client.get(f"/v1/jobs/{job['id']}/image?size=thumb").status_code == 401
    assert client.get(f"/v1/jobs/{job['id']}/image?size=thumb&csrf_token={csrf_token(key)}").status_code == 200
    assert client.post(f"/v1/jobs/{job['id']}/cancel?csrf_token={csrf_token(key)}").status_code == 401  # reads only
    cancel = client.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-CSRF-Token": csrf_token(key)})
    assert cancel.status_code == 200 and cancel.get_json()["status"] == "canceled"


def test_page_forms_need_the_csrf_token(auth_app: Flask, key: str, png: bytes) -> None:
    client: FlaskClient = auth_app.test_client()
    client.set_cookie(KEY_COOKIE, key)
    for token, status in (("", 403), (csrf_token("vlmq_other"), 403), (csrf_token(key), 202)):
        data = {"task": "describe", "image": (io.BytesIO(png), "a.png")}
        response = client.post("/upload", data=data, headers={"X-CSRF-Token": token})
        assert response.status_code == status, response.get_json()
        if status == 403:
            assert response.get_json()["error"]["code"] == "csrf_failed"


def test_login_sets_a_hardened_cookie_and_refuses_bad_keys(auth_app: Flask, key: str) -> None:
    client: FlaskClient = auth_app.test_client()
    bad = client.post("/login", data={"api_key": "vlmq_wrong", "next": "/"})
    assert bad.status_code == 401 and "Set-Cookie" not in bad.headers
    good = client.post("/login", data={"api_key": key, "next": "//evil.example/"})
    assert good.status_code == 303 and good.headers["Location"] == "/"
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    secure = client.post("/login", data={"api_key": key}, base_url="https://vlmq.example")
    assert "Secure" in secure.headers["Set-Cookie"]


def test_pages_send_security_headers(client: FlaskClient) -> None:
    page = client.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'nonce-" in csp
    nonce = csp.split("script-src 'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in page.get_data(as_text=True)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/healthz").headers["X-Content-Type-Options"] == "nosniff"
