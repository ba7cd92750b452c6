"""The OpenAPI document is valid and describes every `/v1` route the app serves."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from shared.settings import Settings
from tests.support.helpers import data_uri, submit
from web.api.job_input import decode_data_uri
from web.app import create_app
from web.errors import ApiError
from web.openapi import openapi_document


def test_document_is_valid_openapi(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    validate(document)
    assert {"JobCreate", "JobView", "ChatRequest", "ChatCompletion", "BatchObject"} <= set(
        document["components"]["schemas"]
    )


def test_every_api_route_is_documented(app: Flask, client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in paths, f"{path} is served but not documented"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {path} is served but not documented"


DATA_URIS = {
    "data:image/png;base64,iVBORw0KGgo=": True,
    "data:;base64,AAAA": True,
    "data:image/png;name=a.png;base64,QUJD": True,
    "data:image/png;base64,abc": False,  # bad padding
    "data:image/png;base64,": False,  # no bytes: empty_image
    "data:image/png,AAAA": False,  # not base64
    "data:image/png;base64,AA AA": False,
}


def test_the_documented_image_formats_are_what_the_server_takes(settings: Settings, png: bytes) -> None:
    """A generated client that follows the document builds data URIs the server can decode, and no others."""
    schemas = openapi_document(settings)["components"]["schemas"]
    job_image = schemas["JobSubmission"]["properties"]["image"]["pattern"]
    item_image = schemas["BatchItem"]["properties"]["image"]["anyOf"][0]["pattern"]
    chat_image = schemas["ImageUrl"]["properties"]["url"]["anyOf"][0]["pattern"]
    assert job_image == item_image == chat_image
    for uri, accepted in (DATA_URIS | {data_uri(png): True}).items():
        assert (re.search(job_image, uri) is not None) == accepted, uri
        try:
            decoded = bool(decode_data_uri(uri))
        except ApiError:
            decoded = False
        assert decoded == accepted, uri


def test_the_token_ceiling_is_the_services_own(settings: Settings, png: bytes) -> None:
    """With short sequences the document's ceiling is the sequence less the smallest photo, and the server refuses
    one token more whatever the photo."""
    short = settings.model_copy(update={"gpu_max_seq_tokens": 1024})
    schemas = openapi_document(short)["components"]["schemas"]
    for schema, field in [("JobParams", "max_new_tokens"), ("ChatRequest", "max_tokens")]:
        assert schemas[schema]["properties"][field]["anyOf"][0]["maximum"] == 1024 - 16
    default = openapi_document(settings)["components"]["schemas"]
    assert default["JobParams"]["properties"]["max_new_tokens"]["anyOf"][0]["maximum"] == 2048
    app = create_app(short)
    refused = submit(app.test_client(), png, task="describe", params='{"max_new_tokens": 1009}')
    app.extensions["vlmq"].engine.dispose()
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "input_too_long"


def test_every_operation_has_its_own_operation_id(settings: Settings) -> None:
    """schemathesis.toml (and generated clients) name operations by id: one missing cannot be configured."""
    document = openapi_document(settings.model_copy(update={"admin_key": "admin-key-for-tests-0123456789"}))
    ids = [
        operation.get("operationId", f"none for {method} {path}")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]
    assert not [name for name in ids if name.startswith("none for")]
    assert len(ids) == len(set(ids))


def test_security_and_401s_follow_the_auth_setting(settings: Settings) -> None:
    off, on = (openapi_document(settings.model_copy(update={"auth_enabled": auth})) for auth in (False, True))
    assert "security" not in off and "securitySchemes" not in off["components"]
    assert on["security"] == [{"bearer": []}]
    for document, has_401 in ((off, False), (on, True)):
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                assert ("401" in operation["responses"]) is has_401, f"{method} {path}"


def test_response_schemas_are_the_models_that_render_responses(client: FlaskClient, png: bytes) -> None:
    document = client.get("/openapi.json").get_json()
    job = submit(client, png, task="describe").get_json()
    schemas = document["components"]["schemas"]
    assert set(job) <= set(schemas["JobView"]["properties"])
    assert set(schemas["JobView"]["required"]) <= set(job)
    created = document["paths"]["/v1/jobs"]["post"]["responses"]["202"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobView"}


def test_the_admin_api_is_described_only_when_it_is_served(settings: Settings) -> None:
    without = openapi_document(settings)
    assert not any(path.startswith("/v1/admin/") for path in without["paths"])
    with_admin = openapi_document(settings.model_copy(update={"admin_key": "admin-key-for-tests-0123456789"}))
    validate(with_admin)
    admin = {path: ops for path, ops in with_admin["paths"].items() if path.startswith("/v1/admin/")}
    assert set(admin) == {"/v1/admin/keys", "/v1/admin/keys/{key_id}/revoke", "/v1/admin/keys/{key_id}/rotate"}
    for operations in admin.values():
        for operation in operations.values():
            assert operation["security"] == [{"admin": []}] and "401" in operation["responses"]
    assert with_admin["components"]["securitySchemes"]["admin"]["scheme"] == "bearer"
    assert {"KeyCreate", "IssuedKeyView", "AuditPage", "WebhookSettings"} <= set(with_admin["components"]["schemas"])


def test_every_admin_route_is_documented(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"admin_key": "admin-key-for-tests-0123456789"}))
    paths = app.test_client().get("/openapi.json").get_json()["paths"]
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/admin/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            assert set(rule.methods - {"HEAD", "OPTIONS"}) <= {method.upper() for method in paths[path]}
    app.extensions["vlmq"].engine.dispose()
