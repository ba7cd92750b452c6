"""The page cookie: unreadable by scripts, no use to the API without its CSRF token; pages send security headers."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.models import Job
from shared.settings import Settings
from tests.support.factories import api_key, bearer
from tests.support.helpers import data_uri, finish, image_bytes, submit
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
        page.click("#upload-form button[type=submit]")
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


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://localhost:9999"},  # another port of the same host: same-site, not same-origin
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
    ],
)
def test_a_login_from_another_origin_is_refused(auth_app: Flask, key: str, headers: dict[str, str]) -> None:
    refused = auth_app.test_client().post("/login", data={"api_key": key, "next": "/"}, headers=headers)
    assert refused.status_code == 403 and "Set-Cookie" not in refused.headers
    assert "another site" in refused.get_data(as_text=True)


def test_a_login_from_its_own_page_is_taken(auth_app: Flask, key: str) -> None:
    own = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    taken = auth_app.test_client().post("/login", data={"api_key": key, "next": "/"}, headers=own)
    assert taken.status_code == 303 and KEY_COOKIE in taken.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "target", ["/\t/evil.example", "/\n/evil.example", "/\r\nSet-Cookie: x=1", "//evil.example", "https://evil.example"]
)
def test_login_goes_nowhere_off_site(auth_app: Flask, key: str, target: str) -> None:
    response = auth_app.test_client().post("/login", data={"api_key": key, "next": target})
    assert (response.status_code, response.headers["Location"]) == (303, "/")


def test_login_keeps_a_path_of_this_site(auth_app: Flask, key: str) -> None:
    response = auth_app.test_client().post("/login", data={"api_key": key, "next": "/?status=failed"})
    assert response.headers["Location"] == "/?status=failed"


def test_sign_out_clears_the_cookie_behind_the_csrf_token(auth_app: Flask, key: str) -> None:
    client: FlaskClient = auth_app.test_client()
    client.post("/login", data={"api_key": key, "next": "/"})
    page = client.get("/").get_data(as_text=True)
    assert 'id="logout-form"' in page and f'value="{csrf_token(key)}"' in page
    assert client.post("/logout").status_code == 403, "another page cannot sign the user out"
    signed_out = client.post("/logout", data={"csrf_token": csrf_token(key)})
    assert (signed_out.status_code, signed_out.headers["Location"]) == (303, "/")
    assert client.get_cookie(KEY_COOKIE) is None
    assert client.get("/").status_code == 401, "the key is gone"


def test_download_and_json_links_of_the_pages_work_with_auth_on(
    auth_app: Flask, key: str, sessions: sessionmaker[Session], png: bytes
) -> None:
    client: FlaskClient = auth_app.test_client()
    body = {"task": "describe", "items": [{"image": data_uri(png)}]}
    batch = client.post("/v1/batches", json=body, headers=bearer(key)).get_json()
    (job_id,) = [
        job["id"] for job in client.get(f"/v1/jobs?batch_id={batch['id']}", headers=bearer(key)).get_json()["data"]
    ]
    finish(sessions, job_id, "a red square")
    client.post("/login", data={"api_key": key, "next": "/"})
    links = _links(client.get(f"/batches/{batch['id']}").get_data(as_text=True))
    links |= _links(client.get(f"/jobs/{job_id}").get_data(as_text=True))
    wanted = {"download-csv", "download-xlsx", "download-jsonl", "job-json"}
    assert wanted <= set(links), links
    for name in wanted:
        assert client.get(links[name]).status_code == 200, (name, links[name])


def _links(page: str) -> dict[str, str]:
    """The page's links by id, as a browser would follow them (entities decoded)."""
    return {found[0]: html.unescape(found[1]) for found in re.findall(r'<a [^>]*id="([^"]+)"[^>]*href="([^"]+)"', page)}
