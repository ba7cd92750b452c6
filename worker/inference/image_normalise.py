"""Image normalisation before the processor sees a photo.

Phones store rotation in EXIF, shops upload CMYK/RGBA/palette images, and a 50 MP
photo would turn into tens of thousands of visual tokens: orient, convert and cap
the size here so every model gets the same, bounded input.
"""

from __future__ import annotations

from PIL import Image, ImageOps

from worker.inference.engine_contract import InferenceError

MIN_PIXELS = 112 * 112  # below this the vision towers upscale anyway


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
