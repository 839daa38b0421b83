"""Place descriptions in the LaVPR layout: a CSV of ``image_path,description`` rows.

LaVPR ships its descriptions as CSV files keyed by image: a header ``image_path,description``
(also accepted: ``image``/``image_name``/``name``/``filename`` and ``caption``/``text``), or two
columns without a header. Rows are keyed by the image's file name (``ref/0000003.jpg`` ->
``0000003.jpg``), so the same file serves any folder the images are copied or degraded into.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

IMAGE_COLUMNS = ("image_path", "image", "image_name", "name", "filename", "file", "path")
TEXT_COLUMNS = ("description", "caption", "text")


class DescriptionError(ValueError):
    """A description CSV that cannot be read unambiguously (names the file and line)."""


def _key(image: str) -> str:
    return Path(str(image).strip().replace("\\", "/")).name


def read_descriptions(path: str | Path) -> dict[str, str]:
    """{image file name: description}; empty descriptions are skipped. Two rows for the same
    image name with different texts are an error (which one would a query mean?)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"description CSV not found: {p}")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    rows = [(n, r) for n, r in enumerate(rows, start=1) if r and any(c.strip() for c in r)]
    if not rows:
        return {}
    header = [c.strip().lower() for c in rows[0][1]]
    img_col, txt_col = 0, 1
    if (header and header[0] in IMAGE_COLUMNS) or any(h in TEXT_COLUMNS for h in header):
        try:
            img_col = next(i for i, h in enumerate(header) if h in IMAGE_COLUMNS)
            txt_col = next(i for i, h in enumerate(header) if h in TEXT_COLUMNS)
        except StopIteration:
            raise DescriptionError(
                f"{p}: header {rows[0][1]} needs an image column ({'/'.join(IMAGE_COLUMNS)}) "
                f"and a text column ({'/'.join(TEXT_COLUMNS)})"
            ) from None
        rows = rows[1:]
        headerless = False
    else:
        headerless = True
    out: dict[str, str] = {}
    where: dict[str, int] = {}
    for line, row in rows:
        if len(row) <= max(img_col, txt_col):
            raise DescriptionError(f"{p}:{line}: expected an image and a description, got {row}")
        image = row[img_col].strip()
        # Headerless files from captioning pipelines may hold unquoted commas in the text.
        text = (",".join(row[1:]) if headerless else row[txt_col]).strip()
        if not image:
            raise DescriptionError(f"{p}:{line}: empty image name")
        if not text:
            continue
        key = _key(image)
        if key in out and out[key] != text:
            raise DescriptionError(
                f"{p}:{line}: image '{key}' already described differently on line {where[key]}"
            )
        out[key], where[key] = text, line
    return out


def write_descriptions(path: str | Path, items: Iterable[tuple[str, str]]) -> Path:
    """Write ``(image_path, description)`` rows with the LaVPR header."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["image_path", "description"])
        for image, text in items:
            w.writerow([image, text])
    return p


def descriptions_for(paths: Sequence[str | Path], table: dict[str, str]) -> list[str | None]:
    """The description of each image path (by file name), None where there is none."""
    return [table.get(_key(str(p))) for p in paths]
