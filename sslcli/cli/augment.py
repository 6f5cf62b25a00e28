"""``sslcli augment``: write augmented views of images, and a contact sheet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import Threads
from sslcli.cli.view_options import (
    BlurProb,
    CropRatio,
    CropScale,
    FlipProb,
    GrayscaleProb,
    Jitter,
    JitterProb,
    Rotation,
    SolarizeProb,
    view_changes,
)
from sslcli.errors import usage_error


def augment(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Image files or folders (walked recursively).", show_default=False),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the views (created).")],
    preset: Annotated[
        str, typer.Option(help="Recipe: simclr, byol, vicreg, moco-v2, dino, minimal, digits.")
    ] = "simclr",
    views: Annotated[
        int | None, typer.Option(help="Views per image \\[default: the preset's, 2; dino 8].")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same views.")] = 0,
    size: Annotated[
        int | None, typer.Option(help="Side of the (global) views in pixels \\[default: 224].")
    ] = None,
    crop_scale: CropScale = None,
    crop_ratio: CropRatio = None,
    jitter: Jitter = None,
    jitter_prob: JitterProb = None,
    flip_prob: FlipProb = None,
    grayscale_prob: GrayscaleProb = None,
    blur_prob: BlurProb = None,
    solarize_prob: SolarizeProb = None,
    rotation: Rotation = None,
    local_size: Annotated[
        int | None, typer.Option(help="Side of local crops (dino) \\[default: 96].")
    ] = None,
    grid: Annotated[
        Path | None,
        typer.Option(help="Also write a contact sheet PNG: originals beside their views."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images augmented together.")] = 64,
    gpus: Annotated[
        int | None, typer.Option(help="1: run on the GPU; 0: the CPU \\[default: GPU if present].")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Fail on the first unreadable image instead of skipping it.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    threads: Threads = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Write what was written, with each view's parameters, to stdout."
        ),
    ] = False,
) -> None:
    """Write augmented views of images (crop, colour, blur ...) for siamese SSL."""
    import torch

    from sslcli.augment.files import (
        augment_files,
        output_paths,
        save_contact_sheet,
    )
    from sslcli.augment.presets import PRESETS, customise
    from sslcli.data.images import discover_images
    from sslcli.engine.launch import plan_launch
    from sslcli.engine.progress import progress_bar
    from sslcli.engine.runtime import make_runtime, set_threads

    used_threads = set_threads(threads)
    chosen = PRESETS.create(preset)
    count = chosen.default_views if views is None else views
    if count < 1:
        raise usage_error(f"--views must be 1 or more, got {count}")
    if batch_size < 1:
        raise usage_error(f"--batch-size must be 1 or more, got {batch_size}")
    for value in (size, local_size):
        if value is not None and value < 8:
            raise usage_error(f"view sizes must be at least 8 pixels, got {value}")
    changes = view_changes(
        crop_scale,
        crop_ratio,
        jitter,
        jitter_prob,
        flip_prob,
        grayscale_prob,
        blur_prob,
        solarize_prob,
        rotation,
    )
    if size is not None:
        changes["size"] = size
    global_changes = changes
    local_changes = {
        name: value for name, value in changes.items() if name not in ("size", "crop_scale")
    }
    if local_size is not None:
        local_changes["size"] = local_size
    chosen = customise(chosen, global_changes, local_changes)

    plan = plan_launch(gpus, 1, torch.cuda.device_count(), {})
    if plan.processes > 1:
        raise usage_error("augment runs on one device", "pass --gpus 1 or --gpus 0")
    runtime = make_runtime(plan.device_type, "fp32", seed)

    discovery = discover_images(inputs)
    targets = output_paths(discovery, inputs, out, count)
    started = time.perf_counter()
    with progress_bar("augment", len(discovery.images), "img", enabled=not as_json) as progress:
        report = augment_files(
            discovery.images,
            targets,
            chosen,
            count,
            seed,
            runtime.device,
            batch_size,
            strict,
            overwrite,
            progress.advance,
        )
    elapsed = time.perf_counter() - started
    if grid is not None and report.written:
        save_contact_sheet(report, count, chosen.recipe(0).size, grid, overwrite)
        report.grid = grid

    if as_json:
        print_json(
            {
                "preset": preset,
                "seed": seed,
                "device": str(runtime.device),
                "threads": used_threads,
                "views": [
                    {
                        "source": str(item.source),
                        "view": item.view,
                        "path": str(item.path),
                        "params": item.params,
                    }
                    for item in report.written
                ],
                "kept": report.kept,
                "skipped": [{"error": failure.message} for failure in report.skipped],
                "ignored_files": len(discovery.ignored),
                "grid": str(report.grid) if report.grid else None,
            }
        )
        return
    table = Table(title="augment", title_justify="left", show_header=False)
    table.add_row("images", str(len(discovery.images) - len(report.skipped)))
    written = len(report.written) - report.kept
    kept = f" ({report.kept} more kept: they existed already)" if report.kept else ""
    table.add_row("views written", f"{written} in {out}{kept}")
    table.add_row("speed", f"{len(report.written) / elapsed:,.1f} views/s on {runtime.device}")
    if discovery.ignored:
        table.add_row("ignored", f"{len(discovery.ignored)} non-image file(s)")
    if report.grid:
        table.add_row("grid", str(report.grid))
    stderr.print(table)
    for failure in report.skipped:
        stderr.print(f"[yellow]skipped:[/] {failure.message}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)
