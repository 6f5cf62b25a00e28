"""``sslcli sweep``: the several predictions of a latent-variable model, as a contact sheet:
for an image, for a hidden box of an image (``--mask``, a masked run), or (a run trained on
videos) for the moment ``--at`` of a video."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import (
    AsJson,
    CacheDir,
    ModelName,
    OneDevice,
    Precision,
    Strict,
    Threads,
    decode,
    load_model_saying_which,
    plan_one_device,
    report_skipped,
)
from sslcli.errors import usage_error

if TYPE_CHECKING:
    import numpy as np

    from sslcli.engine.runtime import Runtime
    from sslcli.inference.sweep import Sweep
    from sslcli.runs.loading import TrainedModel


def sweep(
    image: Annotated[
        Path, typer.Argument(help="The image x, or a video (with --at).", show_default=False)
    ],
    gallery: Annotated[
        Path,
        typer.Option(
            help="Folder of images to show the predictions with; for a video, of videos "
            "(their frames) or images."
        ),
    ],
    at: Annotated[
        str | None,
        typer.Option(
            help="A video: the moment x ends (e.g. 3.2s); each z predicts the frame one "
            "horizon later.",
            show_default=False,
        ),
    ] = None,
    mask: Annotated[
        str | None,
        typer.Option(
            help="A run of train-latent --objective masked: hide the box x0,y0,x1,y1 "
            "(fractions of the picture, e.g. 0,0.5,1,1: the lower half); each z predicts what "
            "it holds, matched to the same region of the gallery images.",
            show_default=False,
        ),
    ] = None,
    model: ModelName = None,
    samples: Annotated[int, typer.Option(help="Latent values: z = 0, then random directions.")] = 8,
    top: Annotated[int, typer.Option(help="Gallery images shown per latent value.")] = 5,
    radius: Annotated[
        float | None,
        typer.Option(
            help="||z|| of the swept values \\[default: the 90th percentile of ||z*|| between "
            "the image and the gallery].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the z directions.")] = 0,
    grid: Annotated[
        Path | None,
        typer.Option(
            help="Write a contact sheet PNG: a row per z (labelled, with ||z||), x then its "
            "matches, each with its E.",
            show_default=False,
        ),
    ] = None,
    gpus: OneDevice = None,
    precision: Precision = "auto",
    threads: Threads = None,
    cache_dir: CacheDir = None,
    strict: Strict = False,
    as_json: AsJson = False,
) -> None:
    """Sweep the latent z of a train-latent model for one image: each z predicts a different
    target; see which gallery images each prediction matches."""
    from sslcli.data.video import is_video
    from sslcli.engine.runtime import make_runtime, set_threads
    from sslcli.inference.sweep import sweep_latent

    plan = plan_one_device(gpus, "sweep")
    used_threads = set_threads(threads)
    if not image.is_file():
        raise usage_error(f"{image} is not an image file", "give one image, and --gallery DIR")
    trained = load_model_saying_which(model, None, as_json)
    runtime = make_runtime(plan.device_type, precision, seed)
    extra: dict = {}
    if mask is not None:
        if is_video(image) or at is not None:
            raise usage_error("--mask hides part of an image", "give an image, without --at")
        result, names, extra = _sweep_hidden(
            trained, image, mask, gallery, runtime, cache_dir, strict, as_json,
            samples, top, radius, seed, grid,
        )  # fmt: skip
    elif is_video(image):
        if at is None:
            raise usage_error(f"{image} is a video: say when x ends with --at", "e.g. --at 3.2s")
        result, names = _sweep_video(
            trained, image, at, gallery, runtime, cache_dir, samples, top, radius, seed, grid
        )
    else:
        from sslcli.inference.sweep import require_image_context

        if at is not None:
            raise usage_error("--at is a moment of a video", f"{image} is an image: leave it out")
        require_image_context(trained)
        query = decode([image], trained.size, cache_dir, True, as_json)
        shown = decode([gallery], trained.size, cache_dir, strict, as_json)
        result = sweep_latent(
            trained, query.pixels, shown.pixels, runtime, samples, top, radius, seed
        )
        names = shown.names
        if grid is not None:
            from sslcli.inference.sweep import write_sweep_sheet

            write_sweep_sheet(grid, image, result, shown.paths, shown.names)
    report = {
        "model": trained.description,
        "radius": result.radius,
        "threads": used_threads,
        "rows": [
            {
                "z_norm": float(row.z.norm()),
                "matches": [names[i] for i in row.gallery],
                "energies": row.energies,
            }
            for row in result.rows
        ],
    }
    report |= extra | ({"grid": str(grid)} if grid else {})
    if as_json:
        print_json(report)
    else:
        _print(report, result)


def _sweep_hidden(
    trained: TrainedModel,
    image: Path,
    mask: str,
    gallery: Path,
    runtime: Runtime,
    cache_dir: Path | None,
    strict: bool,
    as_json: bool,
    samples: int,
    top: int,
    radius: float | None,
    seed: int,
    grid: Path | None,
) -> tuple[Sweep, list[str], dict]:
    """``sweep IMAGE --mask BOX``: the completions z gives the hidden box of a masked run."""
    from PIL import Image

    from sslcli.eval.features import pixels_to_batch
    from sslcli.inference.hidden_regions import outlined, parse_box, sweep_hidden
    from sslcli.inference.sweep import pixels_thumbnail, write_sheet

    box = parse_box(mask)
    if trained.masked is None:
        raise usage_error(
            "--mask needs a run of train-latent --objective masked (--predict latent); "
            f"{trained.description} is not one",
            "train one: sslcli train-latent DIR --objective masked --backbone vit-tiny",
        )
    query = decode([image], trained.size, cache_dir, True, as_json)
    shown = decode([gallery], trained.size, cache_dir, strict, as_json)
    device, mean, std = runtime.device, trained.mean, trained.std
    swept = sweep_hidden(
        trained.masked.to(device),
        pixels_to_batch(query.pixels[:1], device, mean, std),
        pixels_to_batch(shown.pixels, device, mean, std),
        box, runtime, samples, top, radius, seed,
    )  # fmt: skip
    if grid is not None:

        def picture(pixels: np.ndarray) -> Image.Image:
            return outlined(pixels_thumbnail(pixels), box)

        write_sheet(
            grid, image.name, picture(query.pixels[0]), swept.sweep,
            lambda index: picture(shown.pixels[index]), shown.names,
        )  # fmt: skip
    extra = {
        "mask": list(box),
        "hidden_patches": len(swept.hidden),
        "prediction_spread": swept.prediction_spread,
        "gallery_spread": swept.gallery_spread,
    }
    if swept.unit_radius:
        stderr.print(
            "note: z* stayed at 0 for 90% of the gallery (z barely helps this run): swept "
            "at radius 1; choose one with --radius"
        )
    if not as_json:
        stderr.print(
            f"hidden: {len(swept.hidden)} patches; the predictions of two z differ by "
            f"{swept.prediction_spread:.4f} on average (mean squared), the gallery's regions "
            f"by {swept.gallery_spread:.4f}"
        )
    return swept.sweep, shown.names, extra


def _sweep_video(
    trained: TrainedModel,
    video_path: Path,
    at: str,
    gallery: Path,
    runtime: Runtime,
    cache_dir: Path | None,
    samples: int,
    top: int,
    radius: float | None,
    seed: int,
    grid: Path | None,
) -> tuple[Sweep, list[str]]:
    """The futures each z predicts after ``at`` in the video, matched among the gallery's
    frames (of its videos, at the run's rate) or images; the gallery's names."""
    import numpy as np

    from sslcli.data.cache import default_cache_dir
    from sslcli.data.video import decode_video, decoded_videos, scan_videos
    from sslcli.engine.budget import parse_duration
    from sslcli.inference.continuations import clip_contexts, past_clip, video_model
    from sslcli.inference.sweep import pixels_thumbnail, sweep_context, write_sheet

    continuation = video_model(trained)
    seconds = parse_duration(at, "--at", "3.2s or 1m", zero=True)
    video = decode_video(video_path, continuation.fps, trained.size)
    anchor = video.index_at(seconds)
    if anchor < continuation.context_frames - 1:
        earliest = (continuation.context_frames - 1) / continuation.fps
        raise usage_error(
            f"--at {seconds:g}s leaves fewer than the model's {continuation.context_frames} "
            f"context frames before it in {video_path.name}",
            f"give --at {earliest:g}s or later",
        )
    clip = past_clip(video, continuation, anchor)[None]
    context = clip_contexts(trained, clip, runtime).clone()  # leaves inference mode for z
    cache = cache_dir or default_cache_dir()
    if not _holds_videos(gallery):
        shown = decode([gallery], trained.size, cache_dir, False, True)
        pixels, names = shown.pixels, shown.names
    else:
        paths = scan_videos(gallery)
        videos, _, failures = decoded_videos(paths, continuation.fps, trained.size, cache)
        report_skipped(failures)
        pixels = np.concatenate([np.asarray(v.pixels) for v in videos])
        names = [
            f"{v.path.relative_to(gallery) if gallery.is_dir() else v.path.name}"
            f"@{k / continuation.fps:.2f}s"
            for v in videos
            for k in range(len(v.pixels))
        ]
    result = sweep_context(trained, context, pixels, runtime, samples, top, radius, seed)
    if grid is not None:
        x_name = f"{video_path.name}@{seconds:g}s"
        picture = lambda index: pixels_thumbnail(pixels[index])  # noqa: E731
        write_sheet(grid, x_name, pixels_thumbnail(video.pixels[anchor]), result, picture, names)
    return result, names


def _holds_videos(gallery: Path) -> bool:
    from sslcli.data.video import is_video

    if gallery.is_file():
        return is_video(gallery)
    return any(is_video(path) for path in gallery.rglob("*") if path.is_file())


def _print(report: dict, result: Sweep) -> None:
    from rich.table import Table

    table = Table(title=f"latent sweep (radius {result.radius:.3f})", title_justify="left")
    table.add_column("z")
    table.add_column("||z||", justify="right")
    table.add_column("best matches (E)")
    for number, row in enumerate(report["rows"]):
        matches = ", ".join(
            f"{name} ({energy:.3f})"
            for name, energy in zip(row["matches"], row["energies"], strict=True)
        )
        table.add_row("0" if number == 0 else f"z{number}", f"{row['z_norm']:.3f}", matches)
    stderr.print(table)
    if "grid" in report:
        stderr.print(f"contact sheet: {report['grid']}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
