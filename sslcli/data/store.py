"""The image store: every image decoded once, bounded in size, compressed, in append-only shards.

A photo collection is decoded once into a store shared by every run and command: each image
upright and RGB (see ``images.load_image``), its shorter side reduced to the store's
resolution (never enlarged), its aspect kept, then encoded as JPEG (quality 90, as FFCV's
ImageNet files) or, for tiny images, kept raw. The encoded bytes are appended to shard files
``shard-NNNNN.bin``; an SQLite index maps each file's resolved path, byte size and
modification time to its record. So:

- adding, editing or removing images re-encodes only those images: an unchanged file's row
  still matches, an edited file's does not (its old bytes stay as garbage in the shard);
- a build commits its index rows only after the shard bytes they point to are on disk, so a
  killed build (or a full disk) leaves the store as it was at the last commit; the next build
  cuts the uncommitted tail off the shard and carries on where it stopped;
- images that cannot be decoded are recorded with the reason, and are not tried again until
  the file changes.

Views are then cut from the whole stored image (``training.views``), with torchvision's
RandomResizedCrop semantics; evaluation and embedding resize the same stored image.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from sslcli.data.images import load_image
from sslcli.data.threads import ordered_map
from sslcli.errors import SSLError, usage_error

if TYPE_CHECKING:
    import torch

STORE_FORMAT = 1
"""Part of the store's folder name: bump it when the stored bytes change for the same file."""
JPEG_QUALITY = 90
RAW_MAX_PIXELS = 64 * 64
"""Images of at most this many pixels are kept raw: smaller than JPEG would save, exact, and a
copy instead of a decode."""
SHARD_BYTES = 2**30
"""A shard is closed and a new one begun once it holds this many bytes."""
COMMIT_EVERY = 256
"""Images encoded between two commits: at most this many are encoded again after a kill."""


def default_store_size(size: int) -> int:
    """The resolution stored for training at ``size``: a shorter side 8/7 of it (256 for 224,
    the ImageNet convention), so a crop of the whole image is still downscaled to ``size``."""
    return math.ceil(size * 8 / 7)


@dataclass(frozen=True)
class Record:
    """Where one stored image's bytes are, and its shape."""

    shard: int
    offset: int
    length: int
    height: int
    width: int
    channels: int
    raw: bool


class StoredImages:
    """The stored images of some input paths: ``paths[kept[i]]`` is image ``i``."""

    def __init__(
        self, root: Path, records: list[Record], kept: list[int], failures: list[SSLError]
    ) -> None:
        self.root = root
        self.kept = kept
        self.failures = failures
        self._records = records
        self.heights = np.array([r.height for r in records], dtype=np.int64)
        self.widths = np.array([r.width for r in records], dtype=np.int64)
        self._files: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._records)

    def encoded(self, index: int) -> tuple[Record, bytes]:
        """Image ``index``'s record and stored bytes (a positional read: thread-safe)."""
        record = self._records[index]
        descriptor = self._files.get(record.shard)
        if descriptor is None:
            descriptor = os.open(shard_path(self.root, record.shard), os.O_RDONLY)
            descriptor = self._files.setdefault(record.shard, descriptor)
        data = os.pread(descriptor, record.length, record.offset)
        if len(data) != record.length:
            raise usage_error(
                f"the image store {self.root} is damaged: shard {record.shard} is shorter "
                "than its index says",
                f"delete {self.root} and run again to rebuild it",
            )
        return record, data

    def pixels(self, index: int) -> np.ndarray:
        """Image ``index`` as (height, width, 3) uint8, decoded on the CPU."""
        return decode_pixels(*self.encoded(index))

    def tensors(self, indices: Sequence[int], device: torch.device) -> list[torch.Tensor]:
        """Images ``indices`` as (3, height, width) uint8 tensors on ``device`` (see
        ``decode_tensors``)."""
        return decode_tensors([self.encoded(i) for i in indices], device)

    def close(self) -> None:
        for descriptor in self._files.values():
            os.close(descriptor)
        self._files.clear()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="sslcli-decode")


def _raw(record: Record, data: bytes) -> np.ndarray:
    """A raw record's (height, width, channels) uint8 pixels (read-only, over ``data``)."""
    return np.frombuffer(data, dtype=np.uint8).reshape(record.height, record.width, record.channels)


def decode_pixels(record: Record, data: bytes) -> np.ndarray:
    """Stored bytes as (height, width, 3) uint8, decoded on the CPU."""
    if record.raw:
        array = _raw(record, data)
    else:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image).reshape(record.height, record.width, record.channels)
    return np.repeat(array, 3, axis=2) if record.channels == 1 else array


def decode_tensors(
    encoded: Sequence[tuple[Record, bytes]], device: torch.device
) -> list[torch.Tensor]:
    """Stored images as (3, height, width) uint8 tensors on ``device``: JPEGs decoded in one
    batched nvjpeg call on a GPU, by a thread per core on the CPU (libjpeg-turbo, both through
    TorchCodec); raw images copied. The image store and the streamed shards both decode here."""
    import torch
    from torchcodec.decoders import decode_jpeg

    results: list[torch.Tensor | None] = [None] * len(encoded)
    jpegs: list[int] = []
    for position, (record, data) in enumerate(encoded):
        if record.raw:
            tensor = torch.from_numpy(_raw(record, data).copy()).permute(2, 0, 1)
            results[position] = tensor.expand(3, -1, -1).to(device, non_blocking=True)
        else:
            jpegs.append(position)
    if jpegs:
        sources = [torch.frombuffer(bytearray(encoded[p][1]), dtype=torch.uint8) for p in jpegs]
        if device.type == "cuda":
            decoded = decode_jpeg(sources, mode="RGB", device=device)
        else:
            decoded = list(_pool().map(lambda s: decode_jpeg(s, mode="RGB"), sources))
        for position, tensor in zip(jpegs, decoded, strict=True):
            results[position] = tensor
    return results  # type: ignore[return-value]


def shard_path(root: Path, shard: int) -> Path:
    return root / f"shard-{shard:05d}.bin"


def store_root(cache_dir: Path, resolution: int) -> Path:
    return cache_dir / f"store-v{STORE_FORMAT}-{resolution}px"


def open_store(
    paths: Sequence[Path],
    resolution: int,
    cache_dir: Path,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> StoredImages:
    """The stored images of ``paths`` at ``resolution``, encoding those the store lacks.

    ``on_progress(1)`` follows each image encoded (a store that has them all encodes nothing);
    an image that fails to decode raises when ``strict``, else it is skipped and listed in
    ``failures``, in input order.
    """
    if resolution < 1:
        raise usage_error(f"--store-size must be 1 or more, got {resolution}")
    keys = file_keys(paths)
    root = store_root(cache_dir, resolution)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root), _index(root) as index:
            stored = _lookup(index, keys)
            missing = [i for i, row in enumerate(stored) if row is None]
            if missing:
                _encode_missing(root, index, paths, keys, missing, resolution, strict, on_progress)
                stored = _lookup(index, keys)
    except (OSError, sqlite3.OperationalError) as error:  # a full disk, a read-only folder
        reason = getattr(error, "strerror", None) or error
        raise usage_error(
            f"cannot write the image store in {root}: {reason}",
            "the store keeps every image committed before; free some disk space or set "
            "SSLCLI_CACHE_DIR to a writable folder, then run again to go on",
        ) from None
    except sqlite3.DatabaseError as error:
        raise usage_error(
            f"the image store's index {root / INDEX_FILE} is damaged ({error})",
            f"delete {root} and run again to rebuild it",
        ) from None
    return _assemble(root, paths, stored, strict)


INDEX_FILE = "index.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    path TEXT PRIMARY KEY, bytes INTEGER, mtime_ns INTEGER,
    shard INTEGER, offset INTEGER, length INTEGER,
    height INTEGER, width INTEGER, channels INTEGER, raw INTEGER,
    failure TEXT, hint TEXT
)
"""
FileKey = tuple[str, int, int]
"""A file's resolved path, byte size and modification time (ns): a row matches all three."""


def file_keys(paths: Sequence[Path]) -> list[FileKey]:
    """Each path's key; a missing file is a usage error."""
    folders: dict[Path, Path] = {}
    return [_file_key(path, folders) for path in paths]


def _file_key(path: Path, folders: dict[Path, Path]) -> FileKey:
    """``folders`` caches each folder's resolved path: resolving every file's path again costs
    a system call per part of it, most of a large folder's start-up."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise usage_error(f"{path} does not exist", "was it removed while running?") from None
    if path.is_symlink():
        resolved = path.resolve()
    else:
        parent = folders.get(path.parent)
        if parent is None:
            parent = folders[path.parent] = path.parent.resolve()
        resolved = parent / path.name
    return str(resolved), stat.st_size, stat.st_mtime_ns


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One builder at a time (others wait); readers need no lock (rows point to bytes on
    disk only once committed)."""
    with open(root / ".lock", "a") as handle:
        with contextlib.suppress(OSError):  # no locks on this file system: build unguarded
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _index(root: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(root / INDEX_FILE, timeout=600)
    try:
        connection.execute(_SCHEMA)
        yield connection
    finally:
        connection.close()


Row = tuple
"""(shard, offset, length, height, width, channels, raw, failure, hint)."""


def _lookup(index: sqlite3.Connection, keys: Sequence[FileKey]) -> list[Row | None]:
    """Each key's row when the store holds that exact file (same size and time), else None."""
    index.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (position INTEGER, path TEXT)")
    index.execute("DELETE FROM wanted")
    index.executemany(
        "INSERT INTO wanted VALUES (?, ?)", ((i, key[0]) for i, key in enumerate(keys))
    )
    found: list[Row | None] = [None] * len(keys)
    query = (
        "SELECT w.position, i.bytes, i.mtime_ns, i.shard, i.offset, i.length, i.height, "
        "i.width, i.channels, i.raw, i.failure, i.hint FROM wanted w JOIN images i USING (path)"
    )
    for position, size, mtime, *row in index.execute(query):
        if (size, mtime) == keys[position][1:]:
            found[position] = tuple(row)
    index.execute("DELETE FROM wanted")
    return found


def _assemble(
    root: Path, paths: Sequence[Path], stored: list[Row | None], strict: bool
) -> StoredImages:
    records: list[Record] = []
    kept: list[int] = []
    failures: list[SSLError] = []
    for position, row in enumerate(stored):
        assert row is not None  # every missing image was encoded or recorded as failed
        shard, offset, length, height, width, channels, raw, failure, hint = row
        if failure is not None:
            failures.append(usage_error(failure, hint))
            continue
        records.append(Record(shard, offset, length, height, width, channels, bool(raw)))
        kept.append(position)
    if strict and failures:
        raise failures[0]
    if not kept:
        raise usage_error(
            f"none of the {len(paths)} images could be decoded",
            f"first failure: {failures[0]}" if failures else "give at least one image",
        )
    return StoredImages(root, records, kept, failures)


@dataclass
class _Encoded:
    data: bytes
    height: int
    width: int
    channels: int
    raw: bool


def encode_for_store(path: Path, resolution: int) -> _Encoded:
    """``path`` decoded upright, its shorter side reduced to ``resolution``, encoded."""
    image = load_image(path, shortest=resolution)
    width, height = image.size
    scale = resolution / min(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(image)
    grey = bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())
    if grey:
        image, array = image.convert("L"), array[..., :1]
    height, width, channels = array.shape
    if height * width <= RAW_MAX_PIXELS:
        return _Encoded(np.ascontiguousarray(array).tobytes(), height, width, channels, True)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return _Encoded(buffer.getvalue(), height, width, channels, False)


def _encode(path: Path, resolution: int) -> _Encoded | SSLError:
    try:
        return encode_for_store(path, resolution)
    except SSLError as failure:
        return failure


def _encode_missing(
    root: Path,
    index: sqlite3.Connection,
    paths: Sequence[Path],
    keys: Sequence[FileKey],
    missing: Sequence[int],
    resolution: int,
    strict: bool,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Append the missing images to the open shard and commit their rows every
    ``COMMIT_EVERY`` images, after the bytes they point to are flushed to disk."""
    writer = _ShardWriter(root, index)
    rows: list[tuple] = []
    try:
        for position, encoded in zip(
            missing, ordered_map(lambda i: _encode(paths[i], resolution), missing), strict=True
        ):
            key = keys[position]
            if isinstance(encoded, SSLError):
                if strict:
                    raise encoded
                rows.append(
                    (*key, None, None, None, None, None, None, None, encoded.message, encoded.hint)
                )
            else:
                shard, offset = writer.append(encoded.data)
                rows.append(
                    (
                        *key,
                        shard,
                        offset,
                        len(encoded.data),
                        encoded.height,
                        encoded.width,
                        encoded.channels,
                        int(encoded.raw),
                        None,
                        None,
                    )
                )
            if len(rows) >= COMMIT_EVERY:
                writer.commit(rows)
                rows = []
            if on_progress is not None:
                on_progress(1)
        writer.commit(rows)
    finally:
        writer.close()


class _ShardWriter:
    """Appends to the newest shard, first cutting off bytes no committed row points to."""

    def __init__(self, root: Path, index: sqlite3.Connection) -> None:
        self.root = root
        self.index = index
        shard, end = index.execute(
            "SELECT shard, MAX(offset + length) FROM images WHERE failure IS NULL "
            "GROUP BY shard ORDER BY shard DESC LIMIT 1"
        ).fetchone() or (0, 0)
        self._open(shard, end)

    def _open(self, shard: int, end: int) -> None:
        self.shard = shard
        self.handle = open(shard_path(self.root, shard), "ab")  # noqa: SIM115 (closed in close)
        self.handle.truncate(end)
        self.handle.seek(end)
        self.offset = end

    def append(self, data: bytes) -> tuple[int, int]:
        if self.offset and self.offset + len(data) > SHARD_BYTES:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            self._open(self.shard + 1, 0)
        self.handle.write(data)
        where = (self.shard, self.offset)
        self.offset += len(data)
        return where

    def commit(self, rows: Sequence[tuple]) -> None:
        if not rows:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        with self.index:
            self.index.executemany(
                "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def close(self) -> None:
        self.handle.close()
