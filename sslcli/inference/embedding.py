"""Images in, embeddings out: shared by ``embed``, ``energy`` and ``eval``.

Images are decoded once into the same uint8 cache training uses (so a second pass over a
folder decodes nothing), then embedded in batches under ``inference_mode``. With several
devices each process embeds a contiguous shard and the caller stitches them in order.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslcli.data.images import discover_images
from sslcli.engine.launch import LaunchPlan, launch
from sslcli.engine.progress import progress_bar
from sslcli.engine.runtime import Runtime, set_threads
from sslcli.errors import SSLError, usage_error
from sslcli.runs.loading import TrainedModel


@dataclass
class DecodedSet:
    """The images of some inputs that decoded, at one size, with their names."""

    names: list[str]
    """Each image's path relative to the input folder it was found in (or as given)."""
    paths: list[Path]
    pixels: np.ndarray
    """(N, size, size, 3) uint8, memory-mapped from the cache."""
    cache_file: Path
    failures: list[SSLError] = field(default_factory=list)
    labels: list[str] | None = None
    """Each image's class (its first-level sub-folder) when decoded with ``labelled``."""


def decode_inputs(
    inputs: list[Path],
    size: int,
    cache_dir: Path,
    strict: bool = False,
    show: bool = True,
    labelled: bool = False,
) -> DecodedSet:
    """Decode the image files and folders ``inputs`` at ``size`` (skip-and-list unreadable
    images, or raise with ``strict``); ``labelled``: one folder of class sub-folders."""
    from sslcli.data.cache import decode_once

    classes = _classes(inputs) if labelled else None
    paths = discover_images(inputs).images
    names = [_name(path, inputs) for path in paths]
    with progress_bar("decode", len(paths), "img", show, transient=True) as bar:
        decoded = decode_once(paths, size, cache_dir, strict, bar.advance)
    return DecodedSet(
        names=[names[i] for i in decoded.kept],
        paths=[paths[i] for i in decoded.kept],
        pixels=decoded.pixels,
        cache_file=decoded.cache_file,
        failures=decoded.failures,
        labels=None if classes is None else [classes[i] for i in decoded.kept],
    )


def _classes(inputs: list[Path]) -> list[str]:
    """The class of every image of a labelled folder, in ``discover_images`` order."""
    from sslcli.data.folder import scan_image_folder

    folder = scan_image_folder(inputs[0]) if len(inputs) == 1 and inputs[0].is_dir() else None
    if folder is None or folder.labels is None:
        raise usage_error(
            f"{', '.join(map(str, inputs))} is not a labelled folder",
            "give one folder with a sub-folder per class (at least two), images inside them",
        )
    return [folder.classes[label] for label in folder.labels]


def _name(path: Path, inputs: list[Path]) -> str:
    for root in inputs:
        if root.is_dir() and path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.as_posix()


def embed_pixels(
    model: TrainedModel,
    pixels: np.ndarray,
    runtime: Runtime,
    space: str,
    batch_size: int = 256,
    show: bool = True,
) -> torch.Tensor:
    """Embeddings (N, D), float32 on the CPU, of decoded images in ``space``; non-finite
    ones (a diverged model) are an error."""
    from sslcli.eval.features import extract_features
    from sslcli.inference.finite import check_finite

    encoder = model.encoder(space).to(runtime.device, memory_format=torch.channels_last)
    with progress_bar("embed", len(pixels), "img", show and runtime.is_main) as bar:
        features = extract_features(
            encoder, pixels, runtime, batch_size, model.mean, model.std, bar.advance
        )
    return check_finite(features, model, f"{space} embeddings")


@dataclass
class ShardedEmbeddings:
    embeddings: torch.Tensor
    """(N, D) float32 on the CPU, in the images' order."""
    threads: int
    """The CPU threads each process computed with."""


def embed_sharded(
    plan: LaunchPlan,
    precision: str,
    model: TrainedModel,
    images: DecodedSet,
    space: str,
    batch_size: int,
    show: bool = True,
    threads: int | None = None,
) -> ShardedEmbeddings:
    """:func:`embed_pixels` over every process of ``plan``, each taking a contiguous shard and
    computing with ``threads`` CPU threads (``None``: the process's default)."""
    with tempfile.TemporaryDirectory(prefix="sslcli-embed-") as folder:
        shards = Path(folder)
        job = _ShardJob(
            model, images.cache_file, len(images.pixels), space, batch_size, show, threads
        )
        launch(plan, precision, 0, _embed_shard, job, shards)
        embeddings = torch.cat([torch.from_numpy(np.load(p)) for p in sorted(shards.glob("*.npy"))])
        used = {int(p.read_text()) for p in shards.glob("*.threads")}
        return ShardedEmbeddings(embeddings, max(used))


@dataclass
class _ShardJob:
    model: TrainedModel
    cache_file: Path
    count: int
    space: str
    batch_size: int
    show: bool
    threads: int | None = None


def _embed_shard(runtime: Runtime, job: _ShardJob, shards: Path) -> None:
    threads = set_threads(job.threads)
    pixels = np.load(job.cache_file, mmap_mode="r")[: job.count]
    bounds = np.linspace(0, job.count, runtime.world_size + 1).round().astype(int)
    mine = pixels[bounds[runtime.rank] : bounds[runtime.rank + 1]]
    features = embed_pixels(job.model, mine, runtime, job.space, job.batch_size, job.show)
    np.save(shards / f"shard-{runtime.rank:05d}.npy", features.numpy())
    (shards / f"shard-{runtime.rank:05d}.threads").write_text(str(threads))


def holds_videos(inputs: list[Path]) -> bool:
    """Whether ``inputs`` are videos (each a video file, or a folder with one in it); an
    error when some are videos and some are not."""
    from sslcli.data.video import is_video

    def video_input(path: Path) -> bool:
        if path.is_dir():
            return any(is_video(p) for p in path.rglob("*") if p.is_file())
        return is_video(path)

    kinds = [video_input(path) for path in inputs]
    if any(kinds) and not all(kinds):
        raise usage_error(
            "give images or videos, not both",
            "embed the videos' frames and the images in two commands",
        )
    return bool(kinds) and all(kinds)


def decode_video_inputs(
    inputs: list[Path], fps: float, size: int, cache_dir: Path, show: bool = True
) -> DecodedSet:
    """Every frame of the videos ``inputs`` (files or folders) sampled at ``fps``, named
    ``VIDEO@SECONDSs``; the frames of all of them in one cache file, for the processes that
    embed them. A video that does not decode is skipped and listed."""
    import hashlib

    from sslcli.data.video import decoded_videos, scan_videos
    from sslcli.engine.atomic import atomic_file

    found = [(path, root) for root in inputs for path in scan_videos(root)]
    paths = [path for path, _ in found]
    with progress_bar("decode", len(paths), "video", show, transient=True) as bar:
        videos, kept, failures = decoded_videos(paths, fps, size, cache_dir, bar.advance)
    if not videos:
        raise usage_error(f"none of the {len(paths)} video(s) could be used", "see the list above")
    names = [
        f"{_name(found[i][0], [found[i][1]])}@{k / fps:.2f}s"
        for i, video in zip(kept, videos, strict=True)
        for k in range(len(video.pixels))
    ]
    key = hashlib.sha256("\n".join(names + [str(v.path.resolve()) for v in videos]).encode())
    cache_file = cache_dir / "videos-v1" / f"frames-{key.hexdigest()[:20]}-{size}.npy"
    if not cache_file.is_file():
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cache_file) as temporary, temporary.open("wb") as handle:
            np.save(handle, np.concatenate([np.asarray(video.pixels) for video in videos]))
    return DecodedSet(
        names=names,
        paths=[paths[i] for i in kept],
        pixels=np.load(cache_file, mmap_mode="r"),
        cache_file=cache_file,
        failures=failures,
    )
