"""The data path at 224 px (issue 20): views/s, store size, cost growth.

The JPEGs are synthetic derivatives of the 15 bundled photos of ``sample_data/photos`` (random
crops, flips, scales and per-channel colour gains of them, resized to typical photo sizes and
saved at quality 90), written by the ``make-photos`` sub-command; they are not real photos.

Sub-commands (run each with ``--help``):

- ``make-photos --out DIR --count N [--size WxH]``: the synthetic JPEGs, deterministic by seed.
- ``views --data DIR [--preset simclr|dino]``: views/s of the whole data path (decode, crop,
  the preset's ops, standardisation) on the CPU. Baseline: a plain file-list Dataset (the
  folder has no class sub-folders) + torchvision transforms v2 per sample in a DataLoader with
  2 workers. Ours: the image store built beforehand (build time printed on its own), then
  sslcli's ``ViewBatches`` (simclr) or the same functions with all 8 DINO views (dino).
  ``--stages`` times ours stage by stage.
- ``store --data DIR``: store build time and bytes per image at 256 px, against FFCV's way of
  storing (longer side at most 256, PIL's box filter, JPEG quality 90) and raw pixels.
- ``growth --work DIR --sizes 1000,10000``: store build time and size per image, training
  start-up time and peak RSS of a fresh process, at each size; adding 1% new images.

Setup: none beyond the project's environment (Pillow's box filter stands in for OpenCV's
INTER_AREA, so opencv is not needed).

Run: python benchmarks/data_path.py make-photos --out /tmp/photos --count 2500
     python benchmarks/data_path.py views --data /tmp/photos --steps 20 [--preset dino]
     python benchmarks/data_path.py store --data /tmp/photos
     python benchmarks/data_path.py growth --work /tmp/growth --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

PHOTOS = Path(__file__).resolve().parent.parent / "sample_data" / "photos"
SIZES = (  # (width, height), weight: mostly 500 x 375 landscape, as ImageNet's photos
    ((500, 375), 40),
    ((375, 500), 15),
    ((500, 333), 10),
    ((333, 500), 5),
    ((640, 480), 10),
    ((480, 640), 5),
    ((500, 500), 5),
    ((800, 600), 5),
    ((1024, 768), 5),
)
QUALITY = 90
SIZE = 224
FFCV_MAX_SIDE = 256


# ---------------------------------------------------------------------------- make-photos


def load_bundled() -> list[Image.Image]:
    """The bundled photos of at least 300 px a side, as RGB."""
    sources = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        with Image.open(path) as image:
            if min(image.size) >= 300:
                sources.append(image.convert("RGB"))
    return sources


def synthetic_photo(
    sources: Sequence[Image.Image], rng: random.Random, size: tuple[int, int] | None
) -> Image.Image:
    """A random crop (40-100% of the area, the target's aspect) of a random bundled photo,
    maybe mirrored, with per-channel gains (grey sources become colour), at a photo size."""
    source = sources[rng.randrange(len(sources))]
    if size is None:
        (size,) = rng.choices([s for s, _ in SIZES], weights=[w for _, w in SIZES])
    width, height = source.size
    aspect = size[0] / size[1]
    area = width * height * rng.uniform(0.4, 1.0)
    crop_w = min(width, round((area * aspect) ** 0.5))
    crop_h = min(height, round(crop_w / aspect))
    crop_w = min(crop_w, round(crop_h * aspect))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    image = source.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = image.resize(size, Image.Resampling.BICUBIC)
    gains = np.array([rng.uniform(0.75, 1.25) for _ in range(3)], dtype=np.float32)
    pixels = np.asarray(image, dtype=np.float32) * gains
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_photos(out: Path, count: int, seed: int, size: tuple[int, int] | None) -> float:
    """Write ``count`` synthetic JPEGs to ``out`` (skipping those already there); seconds."""
    out.mkdir(parents=True, exist_ok=True)
    sources = load_bundled()
    start = time.perf_counter()
    for index in range(count):
        rng = random.Random(seed * 1_000_003 + index)
        path = out / f"img-{seed}-{index:07d}.jpg"
        if not path.exists():
            image = synthetic_photo(sources, rng, size)
            image.save(path.with_suffix(".tmp"), format="JPEG", quality=QUALITY)
            path.with_suffix(".tmp").rename(path)
    return time.perf_counter() - start


def parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    width, height = text.lower().split("x")
    return int(width), int(height)


# ---------------------------------------------------------------------------- views


def list_images(data: Path) -> list[Path]:
    from sslcli.data.folder import scan_image_folder

    folder = scan_image_folder(data)
    if folder.labels is not None:
        raise SystemExit(f"{data} has class sub-folders: give the class-free folder")
    return list(folder.paths)


def simclr_transform() -> Callable:
    """torchvision transforms v2, SimCLR's recipe (as benchmarks/augment_speed.py), then
    standardisation with ImageNet's statistics (as ours)."""
    import torch
    import torchvision.transforms.v2 as T

    from benchmarks.augment_speed import torchvision_pipeline
    from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD

    pipeline = torchvision_pipeline(SIZE)
    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)

    def two_views(image: Image.Image) -> list[torch.Tensor]:
        return [normalize(pipeline(image)), normalize(pipeline(image))]

    return two_views


class _PILBlur:
    """DINO's GaussianBlur: PIL's, radius uniform in [0.1, 2], with probability ``p``."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


class _Solarize:
    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        return ImageOps.solarize(image) if random.random() < self.p else image


def dino_transform(local_crops: int = 6) -> Callable:
    """facebookresearch/dino main_dino.py's DataAugmentationDINO (transforms v2 for v1):
    2 global 224 px crops (0.4-1) and ``local_crops`` 96 px crops (0.05-0.4), bicubic."""
    import torch
    import torchvision.transforms.v2 as T

    from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD

    bicubic = T.InterpolationMode.BICUBIC
    flip_and_color_jitter = T.Compose(
        [
            T.RandomHorizontalFlip(p=0.5),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
        ]
    )
    normalize = T.Compose(
        [
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    first = T.Compose(
        [
            T.RandomResizedCrop(224, scale=(0.4, 1.0), interpolation=bicubic),
            flip_and_color_jitter,
            _PILBlur(1.0),
            normalize,
        ]
    )
    second = T.Compose(
        [
            T.RandomResizedCrop(224, scale=(0.4, 1.0), interpolation=bicubic),
            flip_and_color_jitter,
            _PILBlur(0.1),
            _Solarize(0.2),
            normalize,
        ]
    )
    local = T.Compose(
        [
            T.RandomResizedCrop(96, scale=(0.05, 0.4), interpolation=bicubic),
            flip_and_color_jitter,
            _PILBlur(0.5),
            normalize,
        ]
    )

    def views(image: Image.Image) -> list[torch.Tensor]:
        return [first(image), second(image)] + [local(image) for _ in range(local_crops)]

    return views


class FileViews:
    """A plain file-list Dataset (torchvision's ImageFolder loader: PIL, RGB)."""

    def __init__(self, paths: Sequence[Path], transform: Callable) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> list:
        with open(self.paths[index], "rb") as handle:
            image = Image.open(handle).convert("RGB")
        return self.transform(image)


def baseline_views_per_second(
    paths: Sequence[Path], preset: str, batch: int, steps: int, warmup: int, workers: int
) -> float:
    import torch

    transform = simclr_transform() if preset == "simclr" else dino_transform()
    loader = torch.utils.data.DataLoader(
        FileViews(paths, transform),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(0),
    )
    batches = iter(loader)
    for _ in range(warmup):  # starts the workers, fills their prefetch queues
        next(batches)
    start, views = time.perf_counter(), 0
    for _ in range(steps):
        for view in next(batches):
            views += len(view)
    seconds = time.perf_counter() - start
    del batches
    return views / seconds


def training_config(data: Path, preset: str, batch: int, cache_dir: Path):
    from sslcli.training.config import TrainingRequest, resolve_config

    request = TrainingRequest(
        data=str(data),
        method="simclr",
        backbone="resnet50",
        size=SIZE,
        small_images=None,
        preset=preset,
        view_changes={},
        epochs=1,
        batch_size=batch,
        optimizer=None,
        lr_per_256=None,
        weight_decay=None,
        warmup_epochs=None,
        method_options={},
        seed=0,
        precision="fp32",
        knn_every=1,
        eval_dir=None,
        online_probe=False,
        checkpoint_every=0,
        stop_on_collapse=False,
        strict=False,
        cache_dir=str(cache_dir),
    )
    return resolve_config(request, 1)


def build_store(paths: Sequence[Path], resolution: int, cache_dir: Path):
    """(the store, seconds to build it, seconds to open it once built)."""
    from sslcli.data.store import open_store

    start = time.perf_counter()
    open_store(paths, resolution, cache_dir)
    built = time.perf_counter() - start
    start = time.perf_counter()
    stored = open_store(paths, resolution, cache_dir)
    return stored, built, time.perf_counter() - start


class OurViews:
    """Our data path on the CPU: ``ViewBatches`` (simclr), or the same calls with every view
    of the preset (dino: 2 global + 6 local, each recipe as the dino preset's)."""

    def __init__(self, stored, config, preset_name: str) -> None:
        import torch

        from sslcli.augment.presets import PRESETS, customise
        from sslcli.engine.runtime import Runtime
        from sslcli.training.views import ViewBatches

        preset = customise(PRESETS.create(preset_name), {"size": config.size}, {})
        self.preset = preset
        self.stored = stored
        self.config = config
        self.runtime = Runtime(torch.device("cpu"), "fp32", 0)
        self.steps_per_epoch = len(stored) // config.batch_size
        self.batches = ViewBatches(stored, config, preset, self.runtime, self.steps_per_epoch)

    def __call__(self, step: int) -> list:
        if self.preset.default_views == 2:
            return self.batches(step)
        return self.multi_crop(step)

    def multi_crop(self, step: int) -> list:
        """``ViewBatches``' steps with ``default_views`` views."""
        import torch

        from sslcli.training.views import drawn_views, standardised

        config, stored = self.config, self.stored
        epoch = step // self.steps_per_epoch
        local = self.batches.local_indices(step)
        decoded = stored.tensors(local.tolist(), self.runtime.device)
        ids = local + epoch * len(stored)
        heights = torch.from_numpy(stored.heights[local.numpy()])
        widths = torch.from_numpy(stored.widths[local.numpy()])
        recipes = [self.preset.recipe(k) for k in range(self.preset.default_views)]
        return standardised(drawn_views(decoded, ids, heights, widths, recipes, 0), config)


def ours_views_per_second(ours: OurViews, steps: int, warmup: int, first_step: int) -> float:
    for step in range(warmup):
        ours(first_step + step)
    start, views = time.perf_counter(), 0
    for step in range(steps):
        for view in ours(first_step + warmup + step):
            views += len(view)
    return views / (time.perf_counter() - start)


class _Stages:
    """Seconds spent in each named stage (``with stages("name"): ...``)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.name = ""

    def __call__(self, name: str) -> _Stages:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        elapsed = time.perf_counter() - self.start
        self.totals[self.name] = self.totals.get(self.name, 0.0) + elapsed


def report_stages(ours: OurViews, steps: int) -> None:
    """Milliseconds per step of each stage of ours, run one after the other (the ops of
    ``cut_views`` and ``_colour`` unrolled, in their order and chunking)."""
    import torch

    from sslcli.augment import ops
    from sslcli.augment.views import CPU_CHUNK_BYTES, ViewParams, _jitter, _on_chosen, sample_view
    from sslcli.data.normalization import normalize

    stored, config, preset = ours.stored, ours.config, ours.preset
    stage = _Stages()
    for step in range(steps + 1):
        if step == 1:  # the first step warms up
            stage.totals.clear()
        local = ours.batches.local_indices(step)
        with stage("decode (torchcodec, 2 threads)"):
            decoded = stored.tensors(local.tolist(), ours.runtime.device)
        heights = torch.from_numpy(stored.heights[local.numpy()])
        widths = torch.from_numpy(stored.widths[local.numpy()])
        with stage("sample parameters"):
            drawn = [
                (sample_view(preset.recipe(k), local, heights, widths, 0, k), preset.recipe(k))
                for k in range(preset.default_views)
            ]
        groups: dict[int, list[int]] = {}
        for k, (_, recipe) in enumerate(drawn):
            groups.setdefault(recipe.size, []).append(k)
        for size, members in groups.items():
            with stage("crop + resize (uint8, antialiased)"):
                crops = torch.cat(
                    [
                        ops.resized_crops_uint8(decoded, drawn[k][0].boxes, drawn[k][0].flips, size)
                        for k in members
                    ]
                )
            with stage("to float"):
                crops = crops.float().div_(255)
            params = ViewParams.concatenate([drawn[k][0] for k in members])
            kernel = drawn[members[0]][1].blur_kernel_size
            chunk_size = max(1, CPU_CHUNK_BYTES // (crops[0].numel() * crops.element_size()))
            for begin in range(0, len(crops), chunk_size):
                chunk = crops[begin : begin + chunk_size]
                part = params.select(slice(begin, begin + chunk_size))
                with stage("colour jitter"):
                    _on_chosen(
                        chunk,
                        part.jittered,
                        lambda x, i, p=part: _jitter(x, p.factors[i], p.order[i]),
                    )
                with stage("grayscale"):
                    _on_chosen(chunk, part.grayscale, lambda x, i: ops.to_grayscale(x))
                with stage("blur"):
                    _on_chosen(
                        chunk,
                        part.blurred,
                        lambda x, i, p=part, k=kernel: ops.gaussian_blur(x, p.sigmas[i], k),
                    )
                with stage("solarize"):
                    _on_chosen(chunk, part.solarized, lambda x, i: ops.solarize(x))
            with stage("standardise"):
                normalize(crops, config.mean, config.std, in_place=True)
    whole = sum(stage.totals.values())
    print(f"  stages of ours, ms per step of {config.batch_size} images (mean of {steps} steps):")
    for name, seconds in stage.totals.items():
        print(f"    {name:<32} {seconds / steps * 1000:8.1f} ms  {seconds / whole:6.1%}")
    print(f"    {'all':<32} {whole / steps * 1000:8.1f} ms")


def command_views(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    paths = list_images(args.data)
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="sslcli-bench-store-"))
    config = training_config(args.data, args.preset, args.batch, cache_dir)
    print(
        f"{len(paths)} JPEGs in {args.data}, preset {args.preset}, batch {args.batch}, "
        f"{args.steps} timed steps after {args.warmup}, torch {torch.__version__}, "
        f"{args.threads} threads, {os.cpu_count()} cores, OMP_WAIT_POLICY "
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f}"
    )
    stored, built, opened = build_store(paths, config.store_size, cache_dir)
    print(
        f"store at {config.store_size} px: built in {built:.1f} s "
        f"({built / len(paths) * 1000:.2f} ms/image), opened again in {opened:.2f} s"
    )
    ours = OurViews(stored, config, args.preset)
    per_image = ours.preset.default_views
    print(f"views per image: {per_image} (both pipelines)")
    baselines, results = [], []
    for repeat in range(args.repeats):
        baseline = math.nan
        if not args.skip_baseline:
            baseline = baseline_views_per_second(
                paths, args.preset, args.batch, args.steps, args.warmup, args.workers
            )
        mine = ours_views_per_second(ours, args.steps, args.warmup, repeat * 1000)
        baselines.append(baseline)
        results.append(mine)
        print(
            f"  repeat {repeat + 1}: torchvision DataLoader({args.workers} workers) "
            f"{baseline:7.1f} views/s | sslcli store + ViewBatches {mine:7.1f} views/s | "
            f"ratio {mine / baseline:.2f}"
        )
    ratios = [m / b for m, b in zip(results, baselines, strict=True)]
    print(
        f"median: torchvision {statistics.median(baselines):.1f} views/s "
        f"({min(baselines):.1f}-{max(baselines):.1f}) | sslcli {statistics.median(results):.1f} "
        f"views/s ({min(results):.1f}-{max(results):.1f}) | ratio "
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}); target >= 2"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.stages:
        report_stages(ours, args.steps)
    if args.cache_dir is None:
        stored.close()
        shutil.rmtree(cache_dir, ignore_errors=True)


# ---------------------------------------------------------------------------- store


def ffcv_encoded(path: Path, max_side: int) -> tuple[int, int]:
    """(JPEG bytes, raw bytes) of ``path`` stored FFCV's way: RGB, longer side at most
    ``max_side`` (area filter), JPEG quality 90."""
    import io

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = max_side / max(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BOX)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=QUALITY)
        return len(buffer.getvalue()), image.width * image.height * 3


def store_stats(paths: Sequence[Path], resolution: int, cache_dir: Path) -> dict[str, float]:
    stored, built, opened = build_store(paths, resolution, cache_dir)
    stored_bytes = sum(stored.encoded(i)[0].length for i in range(len(stored)))
    on_disk = sum(f.stat().st_size for f in cache_dir.rglob("*") if f.is_file())
    raw = float((stored.heights * stored.widths * 3).sum())
    stored.close()
    return {
        "build_ms": built / len(paths) * 1000,
        "open_s": opened,
        "bytes": stored_bytes / len(paths),
        "disk": on_disk / len(paths),
        "raw": raw / len(paths),
    }


def command_store(args: argparse.Namespace) -> None:
    paths = list_images(args.data)
    count = len(paths)
    sides = []
    for path in paths:
        with Image.open(path) as image:
            sides.append(min(image.size) / max(image.size))
    equivalent = args.store_size or round(FFCV_MAX_SIDE * statistics.median(sides))
    work = Path(tempfile.mkdtemp(prefix="sslcli-bench-store-"))
    try:
        ours = store_stats(paths, 256, work / "default")
        same = store_stats(paths, equivalent, work / "equivalent")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    ffcv = [ffcv_encoded(path, FFCV_MAX_SIDE) for path in paths]
    ffcv_ms = (time.perf_counter() - start) / count * 1000
    ffcv_bytes = sum(b for b, _ in ffcv) / count
    ffcv_raw = sum(r for _, r in ffcv) / count
    source = sum(path.stat().st_size for path in paths) / count
    print(f"{count} JPEGs in {args.data}, {source / 1000:.1f} KB each on average")
    print(f"{'storage':<58} {'KB/image':>9} {'ms/image':>9}")
    rows = [
        ("sslcli store, shorter side 256 (default for 224)", ours["bytes"], ours["build_ms"]),
        ("  same, on disk (shards + index)", ours["disk"], None),
        (
            f"sslcli store, shorter side {equivalent} (FFCV's pixels)",
            same["bytes"],
            same["build_ms"],
        ),
        ("FFCV's way: longer side <= 256, box filter, JPEG q90", ffcv_bytes, ffcv_ms),
        ("raw pixels, shorter side 256 (sslcli's resolution)", ours["raw"], None),
        ("raw pixels, longer side 256 (FFCV's raw setting)", ffcv_raw, None),
    ]
    for name, size, ms in rows:
        timing = "" if ms is None else f"{ms:9.2f}"
        print(f"{name:<58} {size / 1000:9.1f} {timing}")
    print(
        "(ms/image: build of the store on 2 threads, or FFCV's encode on 1 thread; "
        f"the store at 256 px opens again in {ours['open_s']:.2f} s)"
    )


# ---------------------------------------------------------------------------- growth

STARTUP = """
import json, resource, sys, time
start = time.perf_counter()
from pathlib import Path
from sslcli.data.folder import scan_image_folder
from sslcli.data.store import open_store
imported = time.perf_counter()
folder = scan_image_folder(Path(sys.argv[1]))
scanned = time.perf_counter()
stored = open_store(folder.paths, int(sys.argv[3]), Path(sys.argv[2]))
opened = time.perf_counter()
assert len(stored) == len(folder.paths)
print(json.dumps({"import": imported - start, "scan": scanned - imported,
    "open": opened - scanned, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def startup(folder: Path, cache_dir: Path, resolution: int, repeats: int) -> dict[str, float]:
    """The median of ``repeats`` fresh processes' start-up: scan + open_store, peak RSS."""
    runs = []
    for _ in range(repeats):
        output = subprocess.run(
            [sys.executable, "-c", STARTUP, str(folder), str(cache_dir), str(resolution)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def command_growth(args: argparse.Namespace) -> None:
    from sslcli.data.folder import scan_image_folder
    from sslcli.data.store import open_store

    sizes = [int(s) for s in args.sizes.split(",")]
    photo_size = parse_size(args.size)
    print(
        f"synthetic JPEGs of {args.size} px (smaller than photos, to keep the largest size "
        f"feasible), store at {args.store_size} px, {os.cpu_count()} cores"
    )
    print(
        f"{'images':>8} {'make s':>8} {'build s':>8} {'ms/img':>7} {'KB/img':>7} "
        f"{'scan s':>7} {'open s':>7} {'import s':>8} {'RSS MB':>7}"
    )
    for count in sizes:
        folder = args.work / f"photos-{count}"
        made = make_photos(folder, count, seed=1, size=photo_size)
        cache_dir = args.work / f"cache-{count}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        paths = list(scan_image_folder(folder).paths)
        start = time.perf_counter()
        stored = open_store(paths, args.store_size, cache_dir)
        built = time.perf_counter() - start
        size = sum(f.stat().st_size for f in cache_dir.rglob("*") if f.is_file())
        stored.close()
        up = startup(folder, cache_dir, args.store_size, args.repeats)
        print(
            f"{count:8d} {made:8.1f} {built:8.1f} {built / count * 1000:7.2f} "
            f"{size / count / 1000:7.1f} {up['scan']:7.3f} {up['open']:7.3f} "
            f"{up['import']:8.3f} {up['rss_mb']:7.0f}",
            flush=True,
        )
    largest = sizes[-1]
    folder = args.work / f"photos-{largest}"
    cache_dir = args.work / f"cache-{largest}"
    added = folder / "added"
    shutil.rmtree(added, ignore_errors=True)
    make_photos(added, largest // 100, seed=2, size=photo_size)
    paths = list(scan_image_folder(folder).paths)
    start = time.perf_counter()
    stored = open_store(paths, args.store_size, cache_dir)
    adding = time.perf_counter() - start
    assert len(stored) == largest + largest // 100
    stored.close()
    shutil.rmtree(added)
    print(
        f"adding {largest // 100} images (1%) to the {largest}-image store: {adding:.2f} s, "
        f"{adding / built:.2%} of its build ({built:.1f} s)"
    )


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-photos", help="synthetic JPEGs from the bundled photos")
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--count", type=int, required=True)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--size", help="WxH for every image (default: a mix of photo sizes)")
    views = commands.add_parser("views", help="views/s: torchvision DataLoader vs the store")
    views.add_argument("--data", type=Path, required=True)
    views.add_argument("--batch", type=int, default=64)
    views.add_argument("--steps", type=int, default=20)
    views.add_argument("--warmup", type=int, default=3)
    views.add_argument("--repeats", type=int, default=3)
    views.add_argument("--preset", choices=("simclr", "dino"), default="simclr")
    views.add_argument("--workers", type=int, default=2)
    views.add_argument("--threads", type=int, default=2, help="torch threads of ours")
    views.add_argument("--cache-dir", type=Path, help="where ours' store goes (default: temp)")
    views.add_argument("--stages", action="store_true", help="also time ours stage by stage")
    views.add_argument("--skip-baseline", action="store_true", help="time ours only")
    views.add_argument(
        "--omp-wait-policy",
        choices=("ACTIVE", "PASSIVE"),
        help="set OMP_WAIT_POLICY before torch loads (default: the environment's)",
    )
    store = commands.add_parser("store", help="store bytes per image against FFCV's")
    store.add_argument("--data", type=Path, required=True)
    store.add_argument(
        "--store-size",
        type=int,
        help="the shorter side matching FFCV's longer side 256 (default: from the median aspect)",
    )
    growth = commands.add_parser("growth", help="build, start-up and RSS at several sizes")
    growth.add_argument("--work", type=Path, required=True)
    growth.add_argument("--sizes", default="1000,10000")
    growth.add_argument("--size", default="320x240", help="WxH of the synthetic JPEGs")
    growth.add_argument("--store-size", type=int, default=256)
    growth.add_argument("--repeats", type=int, default=3, help="start-up processes per size")
    args = parser.parse_args()
    if getattr(args, "omp_wait_policy", None):  # read once, when torch's OpenMP starts
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    if args.command == "make-photos":
        seconds = make_photos(args.out, args.count, args.seed, parse_size(args.size))
        print(f"{args.count} JPEGs in {args.out} ({seconds:.1f} s)")
    elif args.command == "views":
        command_views(args)
    elif args.command == "store":
        command_store(args)
    else:
        command_growth(args)


if __name__ == "__main__":
    main()
