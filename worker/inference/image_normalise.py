"""Image normalisation before the processor sees a photo.

Phones store rotation in EXIF, shops upload CMYK/RGBA/palette images, and a 50 MP
photo would turn into tens of thousands of visual tokens: orient, convert and cap
the size here so every model gets the same, bounded input.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageOps

from worker.inference.engine_contract import InferenceError

MIN_PIXELS = 112 * 112  # below this the vision towers upscale anyway
# Modes whose pixels can be box-averaged; palette and 1-bit images keep their size until converted.
REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"}
# Photos with more pixels than this are decoded on the one decode thread (see `open_reduced`).
LARGE_PIXELS = 4_000_000
_LARGE_DECODES = ThreadPoolExecutor(1, thread_name_prefix="image-decode")


def open_reduced(data: bytes, max_side: int) -> Image.Image:
    """Decode stored image bytes at no more than about twice `max_side` a side.

    A 39 MP photo decoded at full size is ~120 MB of pixels (and a WebP ~600 MB of
    decoder buffers while it decodes); Celery runs one thread per batch slot, so a
    batch of them used to be decoded and held together. JPEG is decoded DCT-scaled
    (`draft`), other formats are box-reduced right after decoding, so what is kept is
    small; and large photos are decoded one at a time on one thread, which also keeps
    their buffers in one malloc arena (freed ones are reused, not stranded in an arena
    per thread). The final bicubic resize to `max_side` stays in `prepare_image`.
    """
    try:
        image = Image.open(io.BytesIO(data))
        longest = max(image.size)
        if longest > max_side:
            scale = max_side / longest
            image.draft(None, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
        if image.width * image.height > LARGE_PIXELS:
            return _LARGE_DECODES.submit(_decode_reduced, image, max_side).result()
        return _decode_reduced(image, max_side)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InferenceError("image_error", f"the stored image could not be read: {exc}") from None


def _decode_reduced(image: Image.Image, max_side: int) -> Image.Image:
    image.load()
    factor = max(image.size) // max_side
    if factor >= 2 and image.mode in REDUCIBLE_MODES:
        return image.reduce(factor)  # keeps `info`, so the EXIF orientation still applies
    return image


def prepare_image(image: Image.Image, max_side: int) -> Image.Image:
    """Apply EXIF orientation, convert to RGB and cap the longest side at `max_side`."""
    try:
        oriented = ImageOps.exif_transpose(image)
        rgb = oriented.convert("RGB")
    except OSError as exc:  # truncated or undecodable pixel data surfaces here
        raise InferenceError("image_error", f"cannot decode image: {exc}") from exc
    if min(rgb.size) < 1:
        raise InferenceError("image_error", "image has no pixels")
    longest = max(rgb.size)
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return rgb


def pixel_budget(max_side: int) -> dict[str, int]:
    """The processor's `size` bounds (in pixels) for images capped at `max_side`.

    GLM's resize rule counts the two temporal frames of a still image, hence the
    factor 2: an image already capped at `max_side` is then never shrunk further.
    """
    return {"shortest_edge": MIN_PIXELS, "longest_edge": 2 * max_side * max_side}
