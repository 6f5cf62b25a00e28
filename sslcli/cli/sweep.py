"""``sslcli sweep``: the several predictions of a latent-variable model, as a contact sheet."""

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
)
from sslcli.errors import usage_error

if TYPE_CHECKING:
    from sslcli.inference.sweep import Sweep


def sweep(
    image: Annotated[Path, typer.Argument(help="The image x.", show_default=False)],
    gallery: Annotated[Path, typer.Option(help="Folder of images to show the predictions with.")],
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
    from sslcli.engine.runtime import make_runtime, set_threads
    from sslcli.inference.sweep import sweep_latent

    plan = plan_one_device(gpus, "sweep")
    used_threads = set_threads(threads)
    if not image.is_file():
        raise usage_error(f"{image} is not an image file", "give one image, and --gallery DIR")
    trained = load_model_saying_which(model, None, as_json)
    query = decode([image], trained.size, cache_dir, True, as_json)
    shown = decode([gallery], trained.size, cache_dir, strict, as_json)
    runtime = make_runtime(plan.device_type, precision, seed)
    result = sweep_latent(trained, query.pixels, shown.pixels, runtime, samples, top, radius, seed)
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
                "matches": [shown.names[i] for i in row.gallery],
                "energies": row.energies,
            }
            for row in result.rows
        ],
    }
    report |= {"grid": str(grid)} if grid else {}
    if as_json:
        print_json(report)
    else:
        _print(report, result)


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
