"""Checks an uploaded image before anything is stored or queued.

The check decodes the whole image (a truncated file fails here, not on the GPU),
refuses formats a model cannot read, and reads the pixel count from the header
first so a decompression bomb is refused before it is expanded. A JPEG is decoded
at 1/8 scale: every byte of it is still read and checked, at a fraction of the CPU
and memory of a full-size decode.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from shared.errors import ServiceError

ACCEPTED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
JPEG_CHECK_SCALE = 8  # libjpeg's smallest DCT scale: the entropy-coded data is decoded in full


class ImageRejected(ServiceError):
    """An image the API refuses; the code and message are the client's."""


@dataclass(frozen=True)
class CheckedImage:
    """Bytes that passed every check, with what was learned about them."""

    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Return the checked image or raise `ImageRejected` saying what is wrong."""
    if not data:
        raise ImageRejected("empty_image", "the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageRejected(
            "image_too_large",
            f"the image is {len(data)} bytes; the limit is {max_bytes} bytes",
            status=413,
        )
    accepted = ", ".join(sorted(ACCEPTED_FORMATS))
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format, (width, height) = probe.format, probe.size
    except UnidentifiedImageError:
        raise ImageRejected(
            "invalid_image", f"the file is not an image vlmq can read; accepted formats: {accepted}"
        ) from None
    except Image.DecompressionBombError:
        raise ImageRejected(
            "image_too_many_pixels", f"the image has too many pixels; the limit is {max_pixels}"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("invalid_image", f"the image header is corrupt or truncated: {exc}") from None
    if image_format not in ACCEPTED_FORMATS:
        raise ImageRejected(
            "unsupported_image_type", f"{image_format} images are not accepted; accepted formats: {accepted}"
        )
    if width * height > max_pixels:
        raise ImageRejected(
            "image_too_many_pixels",
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )
    _decode_fully(data)
    return CheckedImage(
        data=data,
        content_type=ACCEPTED_FORMATS[image_format],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _decode_fully(data: bytes) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.draft(None, (max(1, image.width // JPEG_CHECK_SCALE), max(1, image.height // JPEG_CHECK_SCALE)))
                image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("invalid_image", f"the image is corrupt or truncated: {exc}") from None
