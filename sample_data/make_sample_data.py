"""Regenerate sslcli's small, real, openly licensed sample data.

Writes four folders next to this script (or under ``--out``):

* ``photos/``  15 photographs shipped inside scikit-image (``skimage.data``),
  downscaled to at most 512 px on the longest side, JPEG quality 90,
  grayscale images kept grayscale.
* ``digits/<0..9>/``  60 handwritten 20x20 digits per class, cut out of
  OpenCV's ``digits.png`` (Debian package ``opencv-doc``), 8-bit grayscale PNG.
* ``text/``  the opening chapters of three Jane Austen novels (public domain),
  read from the R data of Debian package ``r-cran-janeaustenr``.
* ``videos/``  12 synthetic "moving digits" videos made from ``digits/`` by
  ``make_videos.py`` (which can also be run on its own).

Sources and licences are listed in ``README.md`` beside this script.

Requirements: Debian (``apt-get`` and ``dpkg-deb``) and a Python >= 3.10
environment with ``numpy pillow scikit-image rdata av``. Run from anywhere::

    python3 -m venv /tmp/sdvenv
    /tmp/sdvenv/bin/pip install numpy pillow scikit-image rdata av
    /tmp/sdvenv/bin/python sample_data/make_sample_data.py

The Debian packages are fetched with ``apt-get download`` into a temporary
folder (run ``apt-get update`` once first). To use ``.deb`` files fetched
earlier, pass the folder holding them: ``--deb-dir /path/to/debs``.
The output is deterministic for fixed package versions.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import rdata
from PIL import Image

# skimage.data images whose docstrings state public domain, CC0 or
# "no known copyright restrictions" (see README.md for each one).
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "retina",
    "rocket",
)
MAX_SIDE = 512
JPEG_QUALITY = 90

DIGITS_PNG = Path("usr/share/doc/opencv-doc/examples/data/digits.png")
DIGIT_SIZE = 20
ROWS_PER_CLASS = 5
DIGIT_COLUMNS = range(0, 96, 8)  # 12 columns spread over the 100, in every row

AUSTEN_DATA = Path("usr/lib/R/site-library/janeaustenr/data/Rdata")
# (R object name, output file stem, title)
NOVELS: tuple[tuple[str, str, str], ...] = (
    ("prideprejudice", "pride_and_prejudice", "Pride and Prejudice"),
    ("persuasion", "persuasion", "Persuasion"),
    ("northangerabbey", "northanger_abbey", "Northanger Abbey"),
)
TEXT_BYTES_PER_FILE = 100_000
CHAPTER_HEADING = re.compile(r"chapter\s+\w+", re.IGNORECASE)

PACKAGES: tuple[str, ...] = ("opencv-doc", "r-cran-janeaustenr")


def fetch_deb(package: str, deb_dir: Path) -> Path:
    """Return the .deb of ``package`` in ``deb_dir``, downloading it if absent."""
    found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=deb_dir, check=True)
        found = sorted(deb_dir.glob(f"{package}_*.deb"))
    return found[-1]


def unpack(deb: Path, dest: Path) -> Path:
    """Extract the files of ``deb`` (without installing it) into ``dest``."""
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


def reset_dir(path: Path) -> Path:
    """Remove ``path`` if present and create it empty."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def make_photos(out: Path) -> int:
    """Save the chosen skimage.data images as downscaled JPEGs in ``out``."""
    import skimage.data  # here, so that the text helpers import without scikit-image

    for name in PHOTO_NAMES:
        image = Image.fromarray(getattr(skimage.data, name)())
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        image.save(out / f"{name}.jpg", quality=JPEG_QUALITY)
    return len(PHOTO_NAMES)


def make_digits(digits_png: Path, out: Path) -> int:
    """Cut 60 digits per class out of OpenCV's digits.png into ``out/<label>/``."""
    sheet = np.asarray(Image.open(digits_png).convert("L"))
    count = 0
    for label in range(10):
        class_dir = out / str(label)
        class_dir.mkdir()
        index = 0
        for row in range(label * ROWS_PER_CLASS, (label + 1) * ROWS_PER_CLASS):
            for column in DIGIT_COLUMNS:
                top, left = row * DIGIT_SIZE, column * DIGIT_SIZE
                tile = sheet[top : top + DIGIT_SIZE, left : left + DIGIT_SIZE]
                Image.fromarray(tile).save(class_dir / f"{label}_{index:03d}.png")
                index += 1
        count += index
    return count


def read_lazyload_db(base: Path) -> dict[str, list[str]]:
    """Read the character vectors of an R lazy-load database (.rdx/.rdb pair)."""
    index = rdata.read_rds(base.with_suffix(".rdx"))
    blob = base.with_suffix(".rdb").read_bytes()
    objects: dict[str, list[str]] = {}
    for name, (offset, length) in index["variables"].items():
        # Each record: 4-byte big-endian uncompressed size, then a zlib stream.
        record = zlib.decompress(blob[offset + 4 : offset + length])
        parsed = rdata.parser.parse_data(record, extension=".rds")
        objects[str(name)] = [str(line) for line in rdata.conversion.convert(parsed)]
    return objects


def paragraphs(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines into paragraphs, dropping italics underscores."""
    result: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.replace("_", ""))
        elif current:
            result.append(" ".join(" ".join(current).split()))
            current = []
    return result


def opening_chapters(lines: list[str], title: str, budget: int) -> str:
    """Return the title plus the first whole chapters that fit in ``budget`` bytes."""
    paras = paragraphs(lines)
    starts = [i for i, p in enumerate(paras) if CHAPTER_HEADING.fullmatch(p)]
    text = f"{title}\n\nby Jane Austen\n"
    for start, end in zip(starts, [*starts[1:], len(paras)], strict=True):
        heading, *body = paras[start:end]
        chapter = "\n" + "\n\n".join([heading.title(), *body]) + "\n"
        if len(text.encode()) + len(chapter.encode()) > budget and start != starts[0]:
            break
        text += chapter
    return text


def make_text(austen_base: Path, out: Path) -> int:
    """Write the opening chapters of each novel in NOVELS to ``out``."""
    novels = read_lazyload_db(austen_base)
    for key, stem, title in NOVELS:
        text = opening_chapters(novels[key], title, TEXT_BYTES_PER_FILE)
        (out / f"{stem}.txt").write_text(text, encoding="utf-8")
    return len(NOVELS)


def main() -> None:
    """Fetch the packages and rebuild photos/, digits/, text/ and videos/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--deb-dir",
        type=Path,
        help="folder with (or to download) the .deb files; default: a temporary folder",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where photos/, digits/, text/ and videos/ go (default: beside this script)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        deb_dir = args.deb_dir or Path(tmp, "debs")
        deb_dir.mkdir(parents=True, exist_ok=True)
        roots = {pkg: unpack(fetch_deb(pkg, deb_dir), Path(tmp, pkg)) for pkg in PACKAGES}
        counts = {
            "photos": make_photos(reset_dir(args.out / "photos")),
            "digits": make_digits(roots["opencv-doc"] / DIGITS_PNG, reset_dir(args.out / "digits")),
            "text": make_text(
                roots["r-cran-janeaustenr"] / AUSTEN_DATA, reset_dir(args.out / "text")
            ),
        }
    from make_videos import make_videos  # here: beside this script, and it needs PyAV

    counts["videos"] = len(make_videos(args.out / "digits", args.out / "videos"))
    for folder, count in counts.items():
        print(f"{folder}: {count} files")


if __name__ == "__main__":
    main()
