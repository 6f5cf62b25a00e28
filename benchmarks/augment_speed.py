"""Views per second: sslcli's batched augmentation vs torchvision v2 per sample on PIL images.

Both draw SimCLR views (crop 0.08-1, flip, jitter 0.8/0.8/0.8/0.2 p .8, grey .2, blur .5) from
the same decoded photos of sample_data/ at the same number of threads; decoding is excluded.
The baseline is the per-sample PIL pipeline that lightly and solo-learn use.

Run: python benchmarks/augment_speed.py [--threads 1] [--device cpu|cuda]
On a GPU it also times a ResNet-50 forward+backward on the same batch, to give augmentation
time as a share of a training step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2 as T
from PIL import Image

from sslcli.augment.presets import PRESETS, customise
from sslcli.augment.views import apply_views, sample_view

PHOTOS = Path(__file__).resolve().parent.parent / "sample_data" / "photos"


def load_sources(side: int, count: int) -> list[Image.Image]:
    photos = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        with Image.open(path) as image:
            photos.append(image.convert("RGB").resize((side, side), Image.BILINEAR))
    return [photos[i % len(photos)] for i in range(count)]


def torchvision_pipeline(size: int) -> T.Compose:
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
        ]
    )


def baseline_views_per_second(sources: list[Image.Image], size: int, seconds: float) -> float:
    pipeline = torchvision_pipeline(size)
    views, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for image in sources:
            pipeline(image)
            pipeline(image)
            views += 2
    return views / (time.perf_counter() - start)


def ours_views_per_second(
    sources: list[Image.Image], size: int, seconds: float, device: torch.device
) -> float:
    preset = customise(PRESETS.create("simclr"), {"size": size}, {})
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in sources]))
    pixels = pixels.permute(0, 3, 1, 2).contiguous().to(device)
    count, _, height, width = pixels.shape
    heights, widths = torch.full((count,), height), torch.full((count,), width)

    def two_views(step: int) -> None:
        batch = pixels.float().div_(255)
        ids = torch.arange(step * count, (step + 1) * count)
        drawn = [
            (sample_view(preset.recipe(k), ids, heights, widths, 0, k), preset.recipe(k))
            for k in (0, 1)
        ]
        apply_views(batch, drawn)

    two_views(0)  # warm-up
    _synchronize(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += 1
        two_views(steps)
    _synchronize(device)
    return 2 * count * steps / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def resnet50_step_seconds(batch: int, size: int, device: torch.device) -> float:
    import torchvision

    model = torchvision.models.resnet50().to(device).to(memory_format=torch.channels_last)
    images = torch.randn(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(images).float().logsumexp(dim=1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    _synchronize(device)
    start, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        step()
    _synchronize(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stages", action="store_true", help="also time each stage")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"threads {args.threads}, device {device}, torch {torch.__version__}")
    for source_side, size, batch in ((32, 32, 256), (256, 224, 64)):
        sources = load_sources(source_side, batch)
        baseline = baseline_views_per_second(sources, size, args.seconds)
        ours = ours_views_per_second(sources, size, args.seconds, device)
        print(
            f"{size}x{size} from {source_side}px: torchvision per-sample (CPU) {baseline:8.1f} "
            f"views/s | sslcli batched ({device}) {ours:9.1f} views/s | ratio {ours / baseline:.2f}"
        )
        if args.stages:
            report_stages(sources, size, device)
        if device.type == "cuda" and size == 224:
            report_share_of_step(source_side, size, device, args.seconds)


def report_stages(sources: list[Image.Image], size: int, device: torch.device) -> None:
    """Milliseconds per stage of one SimCLR view of the batch (synchronised between stages)."""
    from sslcli.augment import ops
    from sslcli.augment.views import _jitter

    recipe = customise(PRESETS.create("simclr"), {"size": size}, {}).recipe(0)
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in sources]))
    pixels = pixels.permute(0, 3, 1, 2).contiguous().to(device)
    count = len(sources)
    sides = torch.full((count,), pixels.shape[2])
    params = sample_view(recipe, torch.arange(count), sides, sides, 0, 0)
    on = {name: getattr(params, name).to(device) for name in ("boxes", "flips")}
    batch = pixels.float().div_(255)
    views = ops.resized_crop(batch, on["boxes"], on["flips"], size)
    stages = {
        "to float": lambda: pixels.float().div_(255),
        "crop+flip+resize": lambda: ops.resized_crop(batch, on["boxes"], on["flips"], size),
        "jitter (all samples)": lambda: _jitter(views.clone(), params.factors, params.order),
        "grayscale (all)": lambda: ops.to_grayscale(views),
        "blur (all)": lambda: ops.gaussian_blur(views, params.sigmas, recipe.blur_kernel_size),
        "one view (as used)": lambda: apply_views(batch, [(params, recipe)]),
    }
    for name, stage in stages.items():
        stage()
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(5):
            stage()
        _synchronize(device)
        print(f"  {name:<22} {(time.perf_counter() - start) / 5 * 1000:8.2f} ms for {count} images")


def report_share_of_step(source_side: int, size: int, device: torch.device, seconds: float) -> None:
    """Augmentation time as a share of a ResNet-50 training step on the same batch."""
    images = 256
    views_per_second = ours_views_per_second(
        load_sources(source_side, images), size, seconds, device
    )
    step = resnet50_step_seconds(2 * images, size, device)
    augment = 2 * images / views_per_second
    print(
        f"  {images} images x 2 views: {views_per_second:.0f} views/s, {augment * 1000:.1f} ms; "
        f"ResNet-50 bf16 fwd+bwd on {2 * images} views {step * 1000:.1f} ms; "
        f"augmentation = {augment / (augment + step):.1%} of the step"
    )


if __name__ == "__main__":
    main()
