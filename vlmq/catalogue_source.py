"""What `vlmq batch run` reads: a folder of photos, or a CSV of paths/URLs with SKUs and metadata.

A folder gives every image file in it (sorted, not recursive); each photo's SKU is its file
name without the extension, as catalogues usually name photos. A CSV has a `path` (relative
to the CSV's folder) or `url` column, optionally `sku` and `name`, and any other non-empty
columns become the item's metadata.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from vlmq.client import CliError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
PATH_COLUMNS = ("path", "file", "image")
URL_COLUMNS = ("url", "image_url")


@dataclass(frozen=True)
class SourceItem:
    """One photo to process: a local file or a URL, its name (the results' key), SKU and metadata."""

    name: str
    sku: str | None
    path: Path | None = None
    url: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def item_metadata(self) -> dict[str, str]:
        return ({"sku": self.sku} if self.sku else {}) | self.metadata


def read_source(source: Path) -> list[SourceItem]:
    """The items of a folder or a CSV file, in a stable order (so a rerun sends the same batches)."""
    if source.is_dir():
        return _from_folder(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _from_csv(source)
    raise CliError(f"{source} is neither a folder of photos nor a .csv file listing them")


def _from_folder(folder: Path) -> list[SourceItem]:
    photos = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise CliError(f"{folder} holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [SourceItem(name=path.name, sku=path.stem, path=path) for path in photos]


def _from_csv(table: Path) -> list[SourceItem]:
    with table.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in reader.fieldnames or []]
        reader.fieldnames = columns
        path_column = next((name for name in PATH_COLUMNS if name in columns), None)
        url_column = next((name for name in URL_COLUMNS if name in columns), None)
        if path_column is None and url_column is None:
            raise CliError(f"{table}: the CSV needs a 'path' or 'url' column; it has {', '.join(columns) or 'none'}")
        skip = {path_column, url_column, "sku", "name"}
        items = [_csv_item(table, line, row, path_column, url_column, skip) for line, row in enumerate(reader, start=2)]
    if not items:
        raise CliError(f"{table} lists no photos")
    return items


def _csv_item(
    table: Path, line: int, row: dict[str, str], path_column: str | None, url_column: str | None, skip: set[str | None]
) -> SourceItem:
    path_text = (row.get(path_column) or "").strip() if path_column else ""
    url = (row.get(url_column) or "").strip() if url_column else ""
    if bool(path_text) == bool(url):
        raise CliError(f"{table}, line {line}: give exactly one of a path or a url")
    metadata = {key: value.strip() for key, value in row.items() if key not in skip and key and (value or "").strip()}
    sku = (row.get("sku") or "").strip() or None
    if url:
        name = (row.get("name") or "").strip() or PurePosixPath(urlparse(url).path).name or url
        return SourceItem(name=name, sku=sku, url=url, metadata=metadata)
    path = (table.parent / path_text).resolve()
    name = (row.get("name") or "").strip() or path.name
    return SourceItem(name=name, sku=sku, path=path, metadata=metadata)
