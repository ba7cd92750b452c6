"""Huge photos are decoded reduced: bounded worker memory per image, a cheap web check.

Each measurement runs in a fresh interpreter, so the peak RSS (`ru_maxrss`) it
reports belongs to the code path under test alone.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

MIB = 1024 * 1024

# Peak RSS of this process alone: VmHWM restarts at exec, ru_maxrss keeps the parent's peak.
PEAK_KIB = """
def peak_kib():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""

# Decodes every file named on the command line the way the GPU worker does, each on its own
# thread, holding each decoded and prepared image (a batch holds all of its requests), and
# prints the peak RSS growth.
WORKER_PATH = (
    PEAK_KIB
    + """
import sys
from concurrent.futures import ThreadPoolExecutor
from worker.inference.image_normalise import open_reduced, prepare_image
blobs = [open(path, "rb").read() for path in sys.argv[2:]]
before = peak_kib()
with ThreadPoolExecutor(len(blobs)) as threads:  # one Celery thread per batch slot
    held = list(threads.map(lambda blob: open_reduced(blob, int(sys.argv[1])), blobs))
kept = [prepare_image(image, int(sys.argv[1])) for image in held]
print(peak_kib() - before, *(f"{i.width}x{i.height}" for i in kept))
"""
)

# The web's submit check of one file: peak RSS growth in KiB.
WEB_CHECK = (
    PEAK_KIB
    + """
import sys
from shared.images import check_image
blob = open(sys.argv[1], "rb").read()
before = peak_kib()
check_image(blob, 10**9, 10**9)
print(peak_kib() - before)
"""
)


def photo(width: int, height: int) -> Image.Image:
    """Smooth colour noise: compresses like a photo, unlike a flat fill that no codec has to work for."""
    seed = Image.frombytes("RGB", (width // 64, height // 64), os.urandom(3 * (width // 64) * (height // 64)))
    return seed.resize((width, height), Image.Resampling.BILINEAR)


def _run(script: str, *args: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture(scope="module")
def huge_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 24 MP WebP, JPEG and PNG (the first two EXIF-rotated, as phones store them)."""
    folder = tmp_path_factory.mktemp("huge")
    image = photo(6000, 4000)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    files = {
        "webp": ({"quality": 70, "method": 0, "exif": exif}, "WEBP"),
        "jpeg": ({"quality": 85, "exif": exif}, "JPEG"),
        "png": ({"compress_level": 1}, "PNG"),
    }
    paths = {}
    for name, (options, image_format) in files.items():
        buffer = io.BytesIO()
        image.save(buffer, image_format, **options)
        paths[name] = folder / f"huge.{name}"
        paths[name].write_bytes(buffer.getvalue())
    return paths


def test_a_batch_of_huge_photos_keeps_worker_memory_bounded(huge_photos: dict[str, Path]) -> None:
    """Six 24 MP photos decoded together and held as a batch holds them: at full size that is
    ~430 MB of pixels kept and ~2 GB of decoder buffers at once; reduced, one at a time on
    the decode thread, one WebP decode's buffers (~370 MB) plus about 1 MP kept each."""
    files = [str(huge_photos[name]) for name in ("webp", "jpeg", "png")] * 2
    growth_kib, *sizes = _run(WORKER_PATH, "1024", *files)
    assert int(growth_kib) * 1024 < 512 * MIB, f"peak RSS grew {int(growth_kib) // 1024} MiB"
    # Orientation survives the reduced decode: the rotated photos come out portrait.
    assert sizes == ["683x1024", "683x1024", "1024x683"] * 2


def test_the_web_check_of_a_huge_jpeg_decodes_it_at_an_eighth(huge_photos: dict[str, Path]) -> None:
    """A full decode of a 24 MP JPEG needs 72 MB of pixels; an eighth-scale one about 1 MB."""
    growth_kib = int(_run(WEB_CHECK, str(huge_photos["jpeg"]))[0])
    assert growth_kib * 1024 < 24 * MIB, f"peak RSS grew {growth_kib // 1024} MiB"


def test_a_truncated_huge_jpeg_is_still_refused(huge_photos: dict[str, Path]) -> None:
    from shared.images import ImageRejected, check_image

    data = huge_photos["jpeg"].read_bytes()
    with pytest.raises(ImageRejected) as caught:
        check_image(data[: len(data) - 2000], 10**9, 10**9)
    assert caught.value.code == "invalid_image"


def test_open_reduced_keeps_small_and_palette_photos_and_names_broken_ones() -> None:
    from worker.inference.engine_contract import InferenceError
    from worker.inference.image_normalise import open_reduced, prepare_image

    def encoded(image: Image.Image, image_format: str) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, image_format)
        return buffer.getvalue()

    assert open_reduced(encoded(photo(640, 480), "PNG"), 1024).size == (640, 480)
    # Palette indices cannot be averaged: such a photo is shrunk by prepare_image, after converting.
    palette = open_reduced(encoded(photo(4096, 512).convert("P"), "GIF"), 1024)
    assert palette.size == (4096, 512) and prepare_image(palette, 1024).size == (1024, 128)
    broken = encoded(photo(3000, 2000), "WEBP")
    with pytest.raises(InferenceError) as caught:
        open_reduced(broken[: len(broken) // 2], 1024)
    assert caught.value.code == "image_error"
