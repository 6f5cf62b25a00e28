"""Images/s of ``sslcli embed`` against a plain torchvision DataLoader loop and the model's pure
inference ceiling, on the same images, model, batch and threads, in one run.

- baseline: ``Dataset`` (PIL open, RGB, Resize, CenterCrop, ToTensor, Normalize) ->
  ``DataLoader`` -> model under ``inference_mode``; the faster of 0 and ``--workers`` workers;
- ours, cold: ``sslcli embed``'s path with an empty decode cache (decode + embed);
- ours, warm: the same again, the cache filled (a second embed, eval or energy of a folder);
- ceiling: the model's forward on normalised batches already in memory (the faster of
  contiguous and channels-last inputs).

Images: the bundled photos copied ``--copies`` times (decoding is real work every time).

Each figure is the best of --repeats runs; "cold" uses a new cache folder every run.

Run: python benchmarks/embed_speed.py --backbone resnet18 --size 224 --copies 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision.transforms.v2 as T
from PIL import Image

from sslcli.data.images import discover_images
from sslcli.engine.runtime import make_runtime
from sslcli.inference.embedding import decode_inputs, embed_pixels
from sslcli.runs.loading import load_model

PHOTOS = Path(__file__).resolve().parent.parent / "sample_data" / "photos"


def copy_photos(folder: Path, copies: int) -> Path:
    for copy in range(copies):
        for photo in sorted(PHOTOS.glob("*.jpg")):
            shutil.copy(photo, folder / f"{photo.stem}_{copy:03d}.jpg")
    return folder


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths = paths
        self.transform = T.Compose(
            [
                T.ToImage(),
                T.Resize(size, antialias=True),
                T.CenterCrop(size),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB"))


class Repeats:
    count = 3


def timed(work: Callable[[], object]) -> float:
    """The best of ``Repeats.count`` runs (the least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(Repeats.count):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def baseline(model: torch.nn.Module, paths: list[Path], size: int, batch: int, workers: int):
    loader = torch.utils.data.DataLoader(_Files(paths, size), batch_size=batch, num_workers=workers)

    def run() -> None:
        with torch.inference_mode():
            for images in loader:
                model(images)

    return timed(run)


def ceiling(model: torch.nn.Module, count: int, size: int, batch: int, channels_last: bool):
    images = torch.randn(batch, 3, size, size)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
        model = model.to(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, count, batch):
                model(images[: min(batch, count - start)])

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="each figure: the best of these")
    args = parser.parse_args()
    Repeats.count = args.repeats
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as work:
        images = Path(work) / "images"
        images.mkdir()
        copy_photos(images, args.copies)
        paths = discover_images([images]).images
        count = len(paths)
        trained = load_model(args.backbone, size=args.size)
        model = trained.backbone.eval()
        runtime = make_runtime("cpu", "fp32", 0)
        print(
            f"{count} images ({args.copies} x the bundled photos), {args.backbone} at "
            f"{args.size} px, batch {args.batch_size}, {torch.get_num_threads()} threads"
        )
        ceiling_s = min(
            ceiling(model, count, args.size, args.batch_size, last) for last in (False, True)
        )
        model = load_model(args.backbone, size=args.size).backbone.eval()
        baselines = {
            workers: baseline(model, paths, args.size, args.batch_size, workers)
            for workers in sorted({0, args.workers})
        }

        caches = iter(range(1_000_000))

        def ours(cache: Callable[[], Path]) -> None:
            decoded = decode_inputs([images], args.size, cache(), show=False)
            embed_pixels(trained, decoded.pixels, runtime, "backbone", args.batch_size, False)

        cold_s = timed(lambda: ours(lambda: Path(work) / f"cache-{next(caches)}"))
        warm_s = timed(lambda: ours(lambda: Path(work) / "cache-0"))
        rate = {name: count / seconds for name, seconds in (
            ("ceiling", ceiling_s), ("ours cold", cold_s), ("ours warm", warm_s),
            *((f"baseline {w} workers", s) for w, s in baselines.items()),
        )}  # fmt: skip
        for name, value in rate.items():
            print(f"{name:>22}: {value:8.1f} images/s")
        best = max(count / seconds for seconds in baselines.values())
        print(f"ours cold / best baseline: {rate['ours cold'] / best:.2f}")
        print(f"ours warm / best baseline: {rate['ours warm'] / best:.2f}")
        print(f"ours cold / ceiling: {rate['ours cold'] / rate['ceiling']:.2f}")
        print(f"ours warm / ceiling: {rate['ours warm'] / rate['ceiling']:.2f}")


if __name__ == "__main__":
    main()
