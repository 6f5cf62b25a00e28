"""Square images at one resolution, for evaluation and embedding, memory-mapped from disk.

The images come from the image store (``data.store``: each file decoded once, then kept
compressed); here each is resized so its shorter side is ``size`` and centre-cropped, the
pixels a kNN evaluation or an embedding reads many times, as one uint8 ``.npy`` per (file
list, size). The key covers each file's resolved path, size and modification time, so an
edited, added or removed image gives a new cache file. A sidecar ``-meta.json`` records which images
decoded and why the others did not; it is written before the ``.npy`` is renamed into place,
so an existing ``.npy`` always has its metadata beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sslcli.data.images import to_rgb
from sslcli.data.store import StoredImages, default_store_size, file_keys, open_store
from sslcli.data.threads import ordered_map
from sslcli.engine.atomic import atomic_file, write_text_atomic
from sslcli.errors import SSLError, usage_error

_FORMAT_VERSION = 3
"""Part of the key: bump it when the stored pixels change for the same files and size."""


def default_cache_dir() -> Path:
    """``$SSLCLI_CACHE_DIR``, else ``$XDG_CACHE_HOME/sslcli/images``, else ``~/.cache/...``."""
    explicit = os.environ.get("SSLCLI_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sslcli" / "images"


def square_resize(image: Image.Image, size: int) -> np.ndarray:
    """Scale the shorter side to ``size`` (bilinear, antialiased), then centre-crop a square."""
    if image.mode != "RGB":
        image = to_rgb(image)
    width, height = image.size
    scale = size / min(width, height)
    new_width = max(size, round(width * scale))
    new_height = max(size, round(height * scale))
    resized = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    left = (new_width - size) // 2
    top = (new_height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)


@dataclass
class DecodedImages:
    pixels: np.ndarray
    """(N, size, size, 3) uint8, memory-mapped read-only; row i is ``paths[kept[i]]``."""
    kept: list[int]
    """Indices into the input paths of the images that decoded."""
    failures: list[SSLError]
    """The images that were skipped, and why."""
    cache_file: Path


def decode_once(
    paths: Sequence[Path],
    size: int,
    cache_dir: Path,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
    store_size: int | None = None,
) -> DecodedImages:
    """Pixels of ``paths`` at ``size`` x ``size``, from the cache or made from the image store
    (at ``store_size``, by default ``default_store_size(size)``).

    A cache hit decodes nothing and reports no progress. Otherwise ``on_progress(1)`` follows
    each image the store encodes; an image that fails to decode raises when ``strict``, else
    it is skipped and listed in ``failures``. A damaged cache file is rebuilt.
    """
    store_size = store_size or default_store_size(size)
    key = _cache_key(paths, size, store_size)
    cache_file = cache_dir / f"{key[:24]}-{size}px.npy"
    meta_file = cache_dir / f"{key[:24]}-{size}px-meta.json"
    if cache_file.exists() and meta_file.exists():
        try:
            cached = _open(cache_file, meta_file, len(paths), size)
        except (OSError, EOFError, ValueError, KeyError, TypeError):
            pass  # truncated or otherwise damaged: rebuilt below
        else:
            if strict and cached.failures:
                raise cached.failures[0]  # as the first decode would have with --strict
            return cached
    stored = open_store(paths, store_size, cache_dir, strict, on_progress)
    try:
        _build(stored, len(paths), size, cache_file, meta_file)
    except OSError as error:
        raise usage_error(
            f"cannot write the image cache in {cache_dir}: {error}",
            "free some disk space or set SSLCLI_CACHE_DIR to a writable folder",
        ) from None
    return _open(cache_file, meta_file, len(paths), size)


def _cache_key(paths: Sequence[Path], size: int, store_size: int) -> str:
    digest = hashlib.sha256(f"sslcli-images-v{_FORMAT_VERSION}\0{size}\0{store_size}\n".encode())
    for resolved, size_bytes, mtime in file_keys(paths):
        digest.update(f"{resolved}\0{size_bytes}\0{mtime}\n".encode())
    return digest.hexdigest()


def _build(stored: StoredImages, count: int, size: int, cache_file: Path, meta_file: Path) -> None:
    """Resize into a memory-mapped file so memory stays bounded however many images there are.

    The file has a row per input path; the stored images fill the first rows in order, and
    rows left over by failures stay zero and are never read (``_open`` keeps ``len(kept)``).
    """
    with atomic_file(cache_file) as temporary:
        pixels = np.lib.format.open_memmap(
            temporary, mode="w+", dtype=np.uint8, shape=(count, size, size, 3)
        )
        for row, square in enumerate(_squares(stored, size)):
            pixels[row] = square
        pixels.flush()
        del pixels
        meta = {
            "kept": stored.kept,
            "failures": [{"message": f.message, "hint": f.hint} for f in stored.failures],
        }
        write_text_atomic(meta_file, json.dumps(meta))


def _squares(stored: StoredImages, size: int) -> Iterator[np.ndarray]:
    """Each stored image as a ``size`` square, in order."""

    def square(index: int) -> np.ndarray:
        return square_resize(Image.fromarray(stored.pixels(index)), size)

    return ordered_map(square, range(len(stored)))


def _open(cache_file: Path, meta_file: Path, count: int, size: int) -> DecodedImages:
    pixels = np.load(cache_file, mmap_mode="r")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    kept = [int(index) for index in meta["kept"]]
    failures = [usage_error(str(f["message"]), str(f["hint"])) for f in meta["failures"]]
    if pixels.dtype != np.uint8 or pixels.shape != (count, size, size, 3):
        raise ValueError(f"{cache_file} holds {pixels.dtype} {pixels.shape}")
    if len(kept) + len(failures) != count:
        raise ValueError(f"{meta_file} does not match {count} images")
    return DecodedImages(
        pixels=pixels[: len(kept)], kept=kept, failures=failures, cache_file=cache_file
    )
