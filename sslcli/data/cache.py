"""Decode each image once, at the training resolution, into a memory-mapped cache on disk.

Decoding JPEGs every epoch costs more than a small model's forward pass, so the pixels are
stored as one uint8 ``.npy`` per (file list, size) and memory-mapped by every later epoch and
run. The cache key covers each file's resolved path, size and modification time, so an edited,
added or removed image gives a new cache file. A sidecar ``-meta.json`` records which images
decoded and why the others did not; it is written before the ``.npy`` is renamed into place,
so an existing ``.npy`` always has its metadata beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sslcli.data.images import load_image, to_rgb
from sslcli.engine.atomic import atomic_file, write_text_atomic
from sslcli.errors import SSLError, usage_error

_FORMAT_VERSION = 2
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
) -> DecodedImages:
    """Pixels of ``paths`` at ``size`` x ``size``, from the cache or decoded into it.

    A cache hit decodes nothing and reports no progress. Otherwise ``on_progress(1)`` follows
    each image; an image that fails to decode raises when ``strict``, else it is skipped and
    listed in ``failures``. A damaged cache file is rebuilt.
    """
    key = _cache_key(paths, size)
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
    try:
        _build(paths, size, cache_file, meta_file, strict, on_progress)
    except OSError as error:
        raise usage_error(
            f"cannot write the image cache in {cache_dir}: {error}",
            "free some disk space or set SSLCLI_CACHE_DIR to a writable folder",
        ) from None
    return _open(cache_file, meta_file, len(paths), size)


def _cache_key(paths: Sequence[Path], size: int) -> str:
    digest = hashlib.sha256(f"sslcli-images-v{_FORMAT_VERSION}\0{size}\n".encode())
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise usage_error(f"{path} does not exist", "was it removed while running?") from None
        resolved = path.resolve()
        digest.update(f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _build(
    paths: Sequence[Path],
    size: int,
    cache_file: Path,
    meta_file: Path,
    strict: bool,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Decode into a memory-mapped file so memory stays bounded however many images there are.

    The file has a row per input path; decoded images fill the first rows in order, and rows
    left over by failures stay zero and are never read (``_open`` keeps ``len(kept)`` rows).
    """
    kept: list[int] = []
    failures: list[SSLError] = []
    with atomic_file(cache_file) as temporary:
        pixels = np.lib.format.open_memmap(
            temporary, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3)
        )
        for index, decoded in enumerate(_decode_in_threads(paths, size)):
            if isinstance(decoded, SSLError):
                if strict:
                    raise decoded
                failures.append(decoded)
            else:
                pixels[len(kept)] = decoded
                kept.append(index)
            if on_progress is not None:
                on_progress(1)
        if not kept:
            raise usage_error(
                f"none of the {len(paths)} images could be decoded",
                f"first failure: {failures[0]}" if failures else "give at least one image",
            )
        pixels.flush()
        del pixels
        meta = {
            "kept": kept,
            "failures": [{"message": f.message, "hint": f.hint} for f in failures],
        }
        write_text_atomic(meta_file, json.dumps(meta))


DECODE_WINDOW = 64
"""Images decoded ahead of the one being stored: bounds memory whatever the folder's size."""


def _decode(path: Path, size: int) -> np.ndarray | SSLError:
    try:
        return square_resize(load_image(path, shortest=size), size)
    except SSLError as failure:
        return failure


def _decode_in_threads(paths: Sequence[Path], size: int) -> Iterator[np.ndarray | SSLError]:
    """Each path's pixels (or why it failed), in order, decoded by one thread per core (PIL
    releases the GIL while it decodes and resizes)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        pending: deque[Future] = deque()
        for path in paths:
            pending.append(pool.submit(_decode, path, size))
            if len(pending) >= DECODE_WINDOW:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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
