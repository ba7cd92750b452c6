"""One error family, one web handler: an error raised in `shared/` reaches the client as it was raised."""

from __future__ import annotations

import pytest
from flask import Flask

from shared.errors import ServiceError
from shared.images import ImageRejected, check_image
from shared.ssrf import AllowList, UnsafeUrl, check_url
from web.errors import ApiError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ImageRejected("image_too_large", "the image is 9 bytes; the limit is 8", 413), 413, "image_too_large"),
        (UnsafeUrl("image", "image URLs must use http or https, not 'ftp'"), 400, "invalid_image_url"),
        (ServiceError("invalid_request", "items.3: the prompt is empty"), 400, "invalid_request"),
    ],
    ids=["ImageRejected", "UnsafeUrl", "ServiceError"],
)
def test_errors_raised_outside_the_web_are_rendered_without_translation(
    app: Flask, error: ServiceError, status: int, code: str
) -> None:
    @app.get("/v1/raise-for-test")
    def _raise() -> str:
        raise error

    response = app.test_client().get("/v1/raise-for-test")
    assert response.status_code == status
    assert response.get_json() == {"error": {"code": code, "message": error.message}}


def test_every_error_shape_is_one_family() -> None:
    with pytest.raises(ServiceError) as rejected:
        check_image(b"", 1024, 1024)
    assert (rejected.value.code, rejected.value.status) == ("empty_image", 400)
    with pytest.raises(ServiceError) as unsafe:
        check_url("ftp://shop.example/a.png", AllowList(), "image", "VLMQ_IMAGE_URL_ALLOW_HOSTS")
    assert unsafe.value.code == "invalid_image_url"
    assert issubclass(ApiError, ServiceError)


def test_an_error_placed_at_a_field_keeps_its_code_and_status() -> None:
    placed = ImageRejected("image_too_large", "the image is too large", 413).at("items.2")
    assert (placed.code, placed.message, placed.status) == ("image_too_large", "items.2: the image is too large", 413)
