"""The batch that got a GPU worker killed: 30 x 39 MP WebP photos, decoded as the worker does.

Prints, for the worker's decode path (one thread per photo as Celery runs them, decoded
images held as a batch holds its requests), the peak RSS growth and time, before
(full-size decode, then shrink; 8 photos by default, as 30 would need ~18 GB) and after
(`open_reduced` under the decode budget), and the web's submit check time per photo. Each path runs in a
fresh interpreter so its peak RSS is its own. No GPU, model or service needed:

    PYTHONPATH=$PWD .venv/bin/python bench/huge_photos.py --out bench/results/huge_photos.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# argv: max_side, path...; prints one JSON line. "before" is the worker's decode as it was
# (Image.open + load at full size, then prepare_image); "after" is open_reduced.
# Peak RSS of this process alone: VmHWM restarts at exec, ru_maxrss keeps the parent's peak.
PEAK_KIB = """
def peak_kib():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""

DECODE = (
    PEAK_KIB
    + """
import io, json, sys, time
from concurrent.futures import ThreadPoolExecutor
from PIL import Image
from worker.inference.image_normalise import open_reduced, prepare_image
path, max_side, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
blobs = [open(f, "rb").read() for f in files]
def full_size(blob, side):
    image = Image.open(io.BytesIO(blob))
    image.load()
    return image
decode = {"before": full_size, "after": open_reduced}[path]
before = peak_kib()
start = time.perf_counter()
# One thread per photo, as Celery runs one per batch slot; each request holds its decoded
# image until the batch ends, as InferenceRequest does.
with ThreadPoolExecutor(len(blobs)) as threads:
    decoded = list(threads.map(lambda blob: decode(blob, max_side), blobs))
kept = [prepare_image(image, max_side) for image in decoded]
seconds = time.perf_counter() - start
growth = peak_kib() - before
print(json.dumps({"rss_growth_mib": round(growth / 1024, 1), "seconds": round(seconds, 2),
                  "decoded_size": list(decoded[0].size), "kept_size": list(kept[0].size)}))
"""
)

# argv: path, which; prints the median time and peak RSS growth of the web's submit check
# ("check") or of the full-size decode it used to do ("full_decode") for one photo.
WEB_CHECK = (
    PEAK_KIB
    + """
import io, json, statistics, sys, time
from PIL import Image
from shared.images import check_image
blob = open(sys.argv[1], "rb").read()
def full_decode(data, *limits):
    with Image.open(io.BytesIO(data)) as image:
        image.load()
check = {"check": check_image, "full_decode": full_decode}[sys.argv[2]]
before = peak_kib()
times = []
for _ in range(3):
    start = time.perf_counter()
    check(blob, 10**9, 10**9)
    times.append(time.perf_counter() - start)
growth = peak_kib() - before
print(json.dumps({"seconds": round(statistics.median(times), 3), "rss_growth_mib": round(growth / 1024, 1)}))
"""
)


def photo(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour noise, so the codec works as it would on a photo."""
    cells = (width // 96, height // 96)
    noise = Image.frombytes(
        "RGB", cells, bytes((seed * 7919 + i * 104729) % 251 for i in range(3 * cells[0] * cells[1]))
    )
    return noise.resize((width, height), Image.Resampling.BICUBIC)


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def run(script: str, *args: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--distinct", type=int, default=3, help="distinct photos encoded (WebP encoding is slow)")
    parser.add_argument("--size", default="7200x5400", help="39 MP by default")
    parser.add_argument(
        "--before-count",
        type=int,
        default=8,
        help="photos for the old full-size path (~600 MB each on a shared machine)",
    )
    parser.add_argument("--max-side", type=int, default=1024, help="VLMQ_IMAGE_MAX_SIDE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="huge_photos_"))
    files = []
    for seed in range(args.distinct):
        path = folder / f"photo{seed}.webp"
        path.write_bytes(encoded(photo(width, height, seed), "WEBP", quality=50, method=0))
        files.append(str(path))
    jpeg = folder / "photo.jpg"
    jpeg.write_bytes(encoded(photo(width, height, 0), "JPEG", quality=85))
    batch = [files[i % len(files)] for i in range(args.count)]
    report = {
        "batch": {
            "photos": args.count,
            "size": args.size,
            "format": "WEBP",
            "batch_bytes": sum(Path(f).stat().st_size for f in batch),
            "max_side": args.max_side,
        },
        "worker_decode": {
            "before": {
                "photos": args.before_count,
                **run(DECODE, "before", str(args.max_side), *batch[: args.before_count]),
            },
            "after": {"photos": args.count, **run(DECODE, "after", str(args.max_side), *batch)},
        },
        "web_check_per_photo": {
            name: {which: run(WEB_CHECK, path, which) for which in ("full_decode", "check")}
            for name, path in (("webp", files[0]), ("jpeg", str(jpeg)))
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
