"""Streaming shards: the image store packed into WebDataset tar files, for data beyond one disk.

``pack`` writes the stored images of a folder (``data.store``: decoded once, shorter side
bounded, JPEG or raw) as tar shards of a fixed number of samples, ``shard-000000.tar`` ...,
with the ``webdataset`` library's ``TarWriter``. Each sample is keyed by its index in the
packed set and holds the stored bytes (``jpg``, or ``raw`` for raw pixels) and a ``json``
(relative name, height, width, channels, raw, label). Each shard is written under a temporary
name and renamed once complete; the manifest ``shards.json`` is written last (atomically) and
says what exists: format version, stored resolution, per-shard name, sample count, byte size
and SHA-256, total count and classes. The tars are reproducible (fixed mtime), so re-packing an
unchanged folder finds every shard identical (by its SHA-256) and rewrites none, while a
damaged one is written again.

Reading (``ShardStreams``) never depends on how many processes read: the shards are dealt to
a fixed number C of canonical streams, in an order drawn from (seed, epoch); each stream reads
its shards in windows of whole shards and shuffles each window's samples with a generator of
(seed, epoch, stream, window). Sample ``i`` of stream ``c`` is therefore a pure function of the
seed and the epoch: a resumed run skips whole shards by the manifest's counts (nothing is read
for them) and 2 processes reading 4 streams each see what 1 process reading 8 sees. Shards are
opened with webdataset's ``gopen``, so a URL template may name any ``pipe:`` command
(object storage through its command-line client).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sslcli.data.store import Record
from sslcli.errors import SSLError, usage_error

if TYPE_CHECKING:
    from sslcli.data.folder import ImageFolder
    from sslcli.data.store import StoredImages

SHARDS_FORMAT = 1
"""The manifest's ``format``: bump it when the shards' layout changes."""
MANIFEST_FILE = "shards.json"
DEFAULT_SAMPLES_PER_SHARD = 1000
DEFAULT_STREAMS = 8
"""Canonical streams C: the process count must divide it (a run records the C it used)."""
WINDOW_SHARDS = 2
"""Whole shards a stream shuffles together (K): a sample's position moves within 2 x 1000."""
KEY_DIGITS = 9


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


@dataclass(frozen=True)
class ShardInfo:
    name: str
    count: int
    bytes: int
    sha256: str
    first: int
    """The packed index of the shard's first sample (samples are packed in order)."""


@dataclass(frozen=True)
class Manifest:
    """What ``shards.json`` says exists, and where it is."""

    path: Path
    resolution: int
    count: int
    shards: list[ShardInfo]
    classes: list[str]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def fingerprint(self) -> str:
        """The packed set's size and content: a run's data order depends on them."""
        digest = hashlib.sha256("\n".join(s.sha256 for s in self.shards).encode()).hexdigest()
        return f"{self.count} samples in {len(self.shards)} shards, content {digest[:16]}"


def manifest_path(data: Path) -> Path | None:
    """The manifest ``data`` names (the file itself, or the folder holding it), else None."""
    if data.is_file() and data.suffix == ".json":
        return data
    candidate = data / MANIFEST_FILE
    return candidate if candidate.is_file() else None


def read_manifest(path: Path) -> Manifest:
    """``shards.json``, checked: a clear sentence for another version's or a damaged one."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise usage_error(
            f"cannot read the shard manifest {path}: {error}",
            "pack the folder again with sslcli pack DIR --out SHARDS",
        ) from None
    if not isinstance(saved, dict) or saved.get("kind") != "sslcli-shards":
        raise usage_error(
            f"{path} is not a shard manifest written by sslcli pack",
            "give the folder sslcli pack wrote, or its shards.json",
        )
    if saved.get("format") != SHARDS_FORMAT:
        raise usage_error(
            f"{path} is a shard manifest of format {saved.get('format')}; this version of "
            f"sslcli reads format {SHARDS_FORMAT}",
            "pack the folder again with this version: sslcli pack DIR --out SHARDS",
        )
    shards, first = [], 0
    for entry in saved["shards"]:
        shards.append(
            ShardInfo(entry["name"], entry["count"], entry["bytes"], entry["sha256"], first)
        )
        first += entry["count"]
    if first != saved["count"]:
        raise usage_error(
            f"the shard manifest {path} is damaged: its shards hold {first} samples, "
            f"its total says {saved['count']}",
            "pack the folder again with sslcli pack DIR --out SHARDS",
        )
    return Manifest(path, saved["resolution"], saved["count"], shards, saved["classes"])


# --- packing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packed:
    manifest: Manifest
    written: int
    """Shards written (the others were already there, identical)."""
    failures: list[SSLError]


def pack(
    root: Path,
    out: Path,
    resolution: int,
    cache_dir: Path,
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> Packed:
    """Pack the images of folder ``root`` (through the image store) into shards in ``out``."""
    from sslcli.data.folder import scan_image_folder
    from sslcli.data.store import open_store
    from sslcli.engine.atomic import atomic_file

    if samples_per_shard < 1:
        raise usage_error(f"--samples-per-shard must be 1 or more, got {samples_per_shard}")
    folder = scan_image_folder(root)
    stored = open_store(folder.paths, resolution, cache_dir, strict, on_progress)
    previous = _previous_shards(out)
    entries: list[dict] = []
    written = 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        for number, start in enumerate(range(0, len(stored), samples_per_shard)):
            positions = range(start, min(start + samples_per_shard, len(stored)))
            data = _shard_bytes(stored, folder, root, positions)
            entry = {
                "name": shard_name(number),
                "count": len(positions),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            target = out / entry["name"]
            if previous.get(entry["name"]) != entry or _digest(target) != entry["sha256"]:
                with atomic_file(target) as temporary:
                    Path(temporary).write_bytes(data)
                written += 1
            entries.append(entry)
        manifest = {
            "kind": "sslcli-shards",
            "format": SHARDS_FORMAT,
            "resolution": resolution,
            "count": len(stored),
            "samples_per_shard": samples_per_shard,
            "classes": folder.classes,
            "shards": entries,
        }
        with atomic_file(out / MANIFEST_FILE) as temporary:
            Path(temporary).write_text(json.dumps(manifest, indent=1) + "\n")
        # shards of an earlier, larger pack that the manifest no longer lists
        for name in set(previous) - {entry["name"] for entry in entries}:
            (out / name).unlink(missing_ok=True)
    except OSError as error:
        raise usage_error(
            f"cannot write shards in {out}: {error.strerror or error}",
            "free some disk space or choose another --out; the shards written so far are "
            "kept and are not written again",
        ) from None
    return Packed(read_manifest(out / MANIFEST_FILE), written, stored.failures)


def _previous_shards(out: Path) -> dict[str, dict]:
    """The shards an earlier pack into ``out`` recorded (none when it has no readable one)."""
    try:
        saved = json.loads((out / MANIFEST_FILE).read_text())
        return {entry["name"]: entry for entry in saved["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _digest(path: Path) -> str | None:
    """The SHA-256 of a shard on disk (None when it is missing): a damaged one is rewritten."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(2**20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _shard_bytes(stored: StoredImages, folder: ImageFolder, root: Path, positions: range) -> bytes:
    """One shard as a reproducible tar (fixed times and owner), written by webdataset."""
    from webdataset import TarWriter

    buffer = io.BytesIO()
    with TarWriter(buffer, encoder=False, mtime=0, user="sslcli", group="sslcli") as writer:
        for position in positions:
            record, data = stored.encoded(position)
            path_index = stored.kept[position]
            label = None if folder.labels is None else folder.labels[path_index]
            meta = {
                "name": folder.paths[path_index].relative_to(root).as_posix(),
                "height": record.height,
                "width": record.width,
                "channels": record.channels,
                "raw": record.raw,
                "label": label,
            }
            writer.write(
                {
                    "__key__": f"{position:0{KEY_DIGITS}d}",
                    "raw" if record.raw else "jpg": data,
                    "json": json.dumps(meta, sort_keys=True).encode(),
                }
            )
    return buffer.getvalue()


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    index: int
    """The sample's index in the packed set (its key)."""
    record: Record
    data: bytes
    label: int | None


class ShardStreams:
    """The C canonical streams of a packed set: ``samples(epoch, stream, start, stop)``."""

    def __init__(
        self,
        manifest: Manifest,
        streams: int,
        seed: int,
        url: str | None = None,
        window: int = WINDOW_SHARDS,
    ) -> None:
        if len(manifest.shards) < streams:
            raise usage_error(
                f"{manifest.folder} has {len(manifest.shards)} shard(s), fewer than the "
                f"{streams} streams that read them",
                f"pack it again with --samples-per-shard at most {manifest.count // streams} "
                "(or give fewer --streams)",
            )
        self.manifest = manifest
        self.streams = streams
        self.seed = seed
        self.url = url
        self.window = window
        self._cache: OrderedDict[tuple[int, int, int], list[Sample]] = OrderedDict()
        self._lock = threading.Lock()

    def shortest(self) -> int:
        """The fewest samples any stream can hold in any epoch: a stream gets the same number
        of shards every epoch, at worst the smallest ones."""
        counts = sorted(shard.count for shard in self.manifest.shards)
        per_stream = len(counts) // self.streams
        return sum(counts[:per_stream])

    def stream_shards(self, epoch: int, stream: int) -> list[ShardInfo]:
        """The shards stream ``stream`` reads in ``epoch``, in order."""
        rng = np.random.default_rng([_entropy(self.seed), epoch])
        order = rng.permutation(len(self.manifest.shards))
        return [self.manifest.shards[i] for i in order[stream :: self.streams]]

    def samples(self, epoch: int, stream: int, start: int, stop: int) -> list[Sample]:
        """Samples ``[start, stop)`` of ``stream`` in ``epoch``: whole windows before ``start``
        are skipped by the manifest's counts, without reading them."""
        shards = self.stream_shards(epoch, stream)
        result: list[Sample] = []
        begin = 0
        for number, first in enumerate(range(0, len(shards), self.window)):
            members = shards[first : first + self.window]
            end = begin + sum(shard.count for shard in members)
            if end > start and begin < stop:
                window = self._window(epoch, stream, number, members)
                result.extend(window[max(start - begin, 0) : stop - begin])
            if end >= stop:
                break
            begin = end
        return result

    def _window(
        self, epoch: int, stream: int, number: int, members: Sequence[ShardInfo]
    ) -> list[Sample]:
        key = (epoch, stream, number)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            samples = [sample for shard in members for sample in self._read(shard)]
            generator = np.random.default_rng([_entropy(self.seed), epoch, stream, number])
            order = generator.permutation(len(samples))
            shuffled = [samples[i] for i in order]
            self._cache[key] = shuffled
            while len(self._cache) > 2 * self.streams:  # this and the next window per stream
                self._cache.popitem(last=False)
            return shuffled

    def shard_url(self, shard: ShardInfo) -> str:
        if self.url is None:
            return str(self.manifest.folder / shard.name)
        return self.url.replace("{name}", shard.name)

    def _read(self, shard: ShardInfo) -> list[Sample]:
        """One shard's samples, in packed order, checked against the manifest."""
        from webdataset.gopen import gopen
        from webdataset.tariterators import group_by_keys, tar_file_expander

        url = self.shard_url(shard)
        again = (
            f"pack the data again with sslcli pack, or fetch {shard.name} again from where the "
            "shards are kept"
        )
        try:
            stream = gopen(url)
        except FileNotFoundError:
            raise usage_error(
                f"shard {shard.name} is missing: {url} does not exist", again
            ) from None
        except Exception as error:  # gopen's own errors for pipes and URLs
            raise usage_error(f"cannot open shard {shard.name} at {url}: {error}", again) from None
        samples: list[Sample] = []
        try:
            with stream:
                tars = tar_file_expander([{"url": url, "stream": stream}])
                for entry in group_by_keys(tars):
                    samples.append(_sample(entry))
        except (tarfile.TarError, OSError, ValueError, KeyError, EOFError) as error:
            failed = re.search(r": exit (\d+) \(read\)", str(error))
            if url.startswith("pipe:") and failed:
                raise usage_error(
                    f"cannot read shard {shard.name}: the command {url.removeprefix('pipe:')!r} "
                    f"failed (exit status {failed.group(1)}; its own message is above)",
                    "check --shard-url and that the shard is where it points (the command "
                    "must write the shard to its standard output)",
                ) from None
            raise usage_error(
                f"shard {shard.name} is truncated or corrupt ({_reason(error)})", again
            ) from None
        indices = [sample.index for sample in samples]
        expected = list(range(shard.first, shard.first + shard.count))
        if indices != expected:
            raise usage_error(
                f"shard {shard.name} holds {len(samples)} sample(s) where the manifest "
                f"{self.manifest.path} says {shard.count}: it was changed after packing "
                "(or is truncated)",
                again,
            )
        return samples


def _entropy(seed: int) -> int:
    """A seed as the non-negative number numpy's seeding takes (negative seeds too)."""
    return seed % 2**64


def _reason(error: Exception) -> str:
    text = str(error.args[0]) if error.args else type(error).__name__
    return text.split(" @ ")[0]


def _sample(entry: dict) -> Sample:
    meta = json.loads(entry["json"])
    raw = bool(meta["raw"])
    data = entry["raw" if raw else "jpg"]
    height, width, channels = meta["height"], meta["width"], meta["channels"]
    if raw and len(data) != height * width * channels:
        raise ValueError(f"sample {entry['__key__']} has {len(data)} bytes of pixels")
    record = Record(0, 0, len(data), height, width, channels, raw)
    return Sample(int(entry["__key__"]), record, data, meta["label"])


def check_streams(streams: int, processes: int, batch_size: int) -> None:
    """C streams must be shared out evenly: over the processes, and in the global batch."""
    if streams < 1:
        raise usage_error(f"--streams must be 1 or more, got {streams}")
    if streams % processes:
        raise usage_error(
            f"the {streams} shard streams cannot be shared out among {processes} processes",
            f"give --streams a multiple of {processes} (a run records its streams: the order "
            "of the data depends on them)",
        )
    if batch_size % streams:
        raise usage_error(
            f"--batch-size {batch_size} is not divisible by the {streams} shard streams",
            f"give a --batch-size that is a multiple of {streams}",
        )
