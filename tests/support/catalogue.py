"""A small labelled product catalogue that the tests draw themselves: known labels, tiny photos.

Photo `i` is a `CATEGORIES[i % 3]` drawn in `COLORS[i % 4]` on white; its material and key
features follow from its category. Deterministic, so expected scores can be worked out by hand.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

CATEGORIES = ("shoes", "bag", "mug")
COLORS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 160, 60), "black": (20, 20, 20)}
MATERIALS = {"shoes": "leather", "bag": "canvas", "mug": "ceramic"}
FEATURES = {
    "shoes": ["lace-up", "rubber sole"],
    "bag": ["zip", "shoulder strap"],
    "mug": ["handle", "dishwasher safe"],
}


@dataclass(frozen=True)
class LabelledPhoto:
    sku: str
    category: str
    color: str

    @property
    def name(self) -> str:
        return f"{self.sku}.png"

    @property
    def label(self) -> dict[str, Any]:
        """The merchandiser's row for this photo (key features joined with `; `)."""
        return {
            "sku": self.sku,
            "name": self.name,
            "category": self.category,
            "color": self.color,
            "material": MATERIALS[self.category],
            "key_features": "; ".join(FEATURES[self.category]),
        }

    def png(self, side: int = 32) -> bytes:
        """The product's silhouette in its color: a shoe, a bag or a mug."""
        image = Image.new("RGB", (side, side), "white")
        draw = ImageDraw.Draw(image)
        fill, s = COLORS[self.color], side
        if self.category == "shoes":
            draw.polygon([(s * 0.1, s * 0.7), (s * 0.5, s * 0.45), (s * 0.9, s * 0.6), (s * 0.9, s * 0.8)], fill=fill)
        elif self.category == "bag":
            draw.rectangle([s * 0.2, s * 0.4, s * 0.8, s * 0.9], fill=fill)
            draw.arc([s * 0.3, s * 0.15, s * 0.7, s * 0.6], 180, 360, fill=fill, width=max(1, s // 16))
        else:
            draw.rectangle([s * 0.25, s * 0.3, s * 0.65, s * 0.85], fill=fill)
            draw.ellipse([s * 0.55, s * 0.4, s * 0.85, s * 0.7], outline=fill, width=max(1, s // 16))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def catalogue(count: int) -> list[LabelledPhoto]:
    colors = list(COLORS)
    return [LabelledPhoto(f"sku-{i:04d}", CATEGORIES[i % 3], colors[i % 4]) for i in range(count)]


def write_photos(folder: Path, photos: list[LabelledPhoto], side: int = 32) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        (folder / photo.name).write_bytes(photo.png(side))
