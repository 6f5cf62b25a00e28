"""``sslcli energy``: how compatible two images are under a trained model (low = compatible),
or how plausible a video's future is given its past (a run trained on videos)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import (
    AsJson,
    BatchSize,
    CacheDir,
    ModelName,
    OneDevice,
    Precision,
    Size,
    Space,
    Strict,
    Threads,
    decode,
    load_model_saying_which,
    plan_one_device,
)
from sslcli.errors import usage_error

if TYPE_CHECKING:
    import numpy as np

    from sslcli.engine.runtime import Runtime
    from sslcli.runs.loading import TrainedModel

MEANING = (
    "1 - cosine similarity of the two embeddings: 0 = same direction (compatible), "
    "1 = unrelated (orthogonal), 2 = opposite"
)
LATENT_MEANING = (
    "F = min over z of E(x, y, z) + lambda R(z), the predictor's error on y from x and the best "
    "latent z: low = compatible; z-gap = E(z=0) - F, how much z helped"
)
SHOWN_CELLS = 100
"""Matrices up to this many cells are printed as a table; larger ones are summarised."""
SHOWN_PAIRS = 100
"""Pairs printed as table rows (``--json`` gives all of them)."""


def energy(
    x: Annotated[
        Path | None,
        typer.Argument(
            help="An image, or a folder of images; or a video (alone: F along it; with Y: "
            "the past).",
            show_default=False,
        ),
    ] = None,
    y: Annotated[
        Path | None,
        typer.Argument(
            help="An image, or a folder of images; or the video that follows X.",
            show_default=False,
        ),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help="Score only the pairs of this CSV file instead of X and Y: one x,y row each "
            "(paths relative to the file's folder, or absolute; an x,y header is skipped).",
            show_default=False,
        ),
    ] = None,
    model: ModelName = None,
    space: Space = None,
    size: Size = None,
    views: Annotated[
        int, typer.Option(help="Average over K augmented view pairs (the run's augmentation).")
    ] = 0,
    seed: Annotated[
        int, typer.Option(help="Seed of the augmented views and of a random-init model's weights.")
    ] = 0,
    matrix: Annotated[
        Path | None,
        typer.Option(
            help="Write every X-Y energy to this CSV (rows X, columns Y).", show_default=False
        ),
    ] = None,
    heatmap: Annotated[
        Path | None,
        typer.Option(
            help="Write the energies as a heatmap PNG: labelled rows X and columns Y, the values "
            "when they fit, a colour bar (dark = low = compatible).",
            show_default=False,
        ),
    ] = None,
    horizon: Annotated[
        str | None,
        typer.Option(
            help="Videos: the horizon the run was trained for, checked \\[default: the run's].",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="One video X: write F along it as a PNG curve (peaks: futures its past did "
            "not foretell).",
            show_default=False,
        ),
    ] = None,
    mask_grid: Annotated[
        int | None,
        typer.Option(
            help="One image X and a run of train-latent --objective masked: F of predicting "
            "each cell of an N x N grid from the rest of the picture (--heatmap draws it over "
            "the picture).",
            show_default=False,
        ),
    ] = None,
    gpus: OneDevice = None,
    precision: Precision = "auto",
    threads: Threads = None,
    batch_size: BatchSize = 256,
    cache_dir: CacheDir = None,
    strict: Strict = False,
    as_json: AsJson = False,
) -> None:
    """Energy F(x, y) of image pairs (low = compatible); folders give every pair, --pairs
    the pairs listed in a file. Videos: F of a future given its past (VIDEO alone: along it;
    PAST FUTURE: the clip FUTURE after the clip PAST)."""
    from sslcli.data.video import is_video
    from sslcli.engine.runtime import make_runtime, set_threads
    from sslcli.inference.energy import energy_matrices

    if any(path is not None and is_video(path) for path in (x, y)):
        if pairs is not None or matrix is not None or heatmap is not None or views:
            raise usage_error(
                "--pairs, --matrix, --heatmap and --views compare images; videos are scored "
                "along their time",
                "give VIDEO alone (with --plot), or PAST FUTURE",
            )
        used_threads = set_threads(threads)
        trained = load_model_saying_which(model, None, as_json, seed)
        runtime = make_runtime(plan_one_device(gpus, "energy").device_type, precision, seed)
        _video_energy(trained, x, y, horizon, plot, runtime, used_threads, as_json)
        return
    if horizon is not None or plot is not None:
        raise usage_error("--horizon and --plot apply to videos", "give a video as X")
    if mask_grid is not None:
        if y is not None or pairs is not None or matrix is not None or views or space:
            raise usage_error(
                "--mask-grid hides parts of one image: it takes X alone (and --heatmap)",
                "drop Y, --pairs, --matrix, --views and --space",
            )
        if x is None or not x.is_file():
            raise usage_error(f"--mask-grid needs one image file as X, got {x}")
        used_threads = set_threads(threads)
        trained = load_model_saying_which(model, None, as_json, seed)
        runtime = make_runtime(plan_one_device(gpus, "energy").device_type, precision, seed)
        _mask_grid_energy(trained, x, mask_grid, heatmap, runtime, cache_dir, used_threads, as_json)
        return
    _check_inputs(x, y, pairs, matrix, heatmap)
    plan = plan_one_device(gpus, "energy")
    used_threads = set_threads(threads)
    trained = load_model_saying_which(model, size, as_json, seed)
    if trained.latent is not None and space is not None:
        raise usage_error(
            "--space applies to joint-embedding models; a latent model's F compares x's "
            "context with y's target",
            "drop --space",
        )
    chosen_space = "latent" if trained.latent is not None else space or trained.default_space()
    if trained.latent is None:
        trained.encoder(chosen_space)  # a clear error before decoding
    meaning = MEANING if trained.latent is None else LATENT_MEANING
    result = {
        "model": trained.description,
        "space": chosen_space,
        "views": views,
        "threads": used_threads,
        "meaning": meaning,
    }
    if pairs is not None:
        from sslcli.data.cache import default_cache_dir
        from sslcli.inference.energy import pair_energies
        from sslcli.inference.pairs import decode_pairs, read_pairs

        listed = read_pairs(pairs)
        decoded, rows = decode_pairs(
            listed, trained.size, cache_dir or default_cache_dir(), not as_json
        )
        if not as_json:
            _note_resizing(decoded.paths, trained.size)
        runtime = make_runtime(plan.device_type, precision, seed)
        scored = pair_energies(
            trained, decoded.pixels, rows, runtime, chosen_space, views, seed, batch_size
        )
        result["pairs_file"] = str(pairs)
        result["pairs"] = [
            {"x": pair.x, "y": pair.y} | {name: float(values[i]) for name, values in scored.items()}
            for i, pair in enumerate(listed)
        ]
        if as_json:
            print_json(result)
        else:
            _print_pairs(result)
        return
    both_files = x.is_file() and y.is_file()
    first = decode([x], trained.size, cache_dir, strict or both_files, as_json)
    second = decode([y], trained.size, cache_dir, strict or both_files, as_json)
    if not as_json:
        _note_resizing(first.paths + second.paths, trained.size)
    runtime = make_runtime(plan.device_type, precision, seed)
    matrices = energy_matrices(
        trained, first.pixels, second.pixels, runtime, chosen_space, views, seed, batch_size
    )
    energies = matrices["energy"].numpy()
    if matrix is not None:
        _write_csv(matrix, first.names, second.names, energies)
    if heatmap is not None:
        from sslcli.inference.heatmap import write_heatmap

        title = f"energy F(x, y), {chosen_space}: rows x ({x.name}), columns y ({y.name})"
        write_heatmap(heatmap, energies, first.names, second.names, title, "compatible")
    result |= {"x": first.names, "y": second.names}
    if both_files:
        result |= {name: float(matrix[0, 0]) for name, matrix in matrices.items()}
    elif energies.size <= SHOWN_CELLS or as_json:
        result["energies"] = energies.tolist()
        result |= {
            f"{name}_matrix": matrix.tolist()
            for name, matrix in matrices.items()
            if name != "energy"
        }
    result |= {"matrix": str(matrix)} if matrix else {}
    result |= {"heatmap": str(heatmap)} if heatmap else {}
    if as_json:
        print_json(result)
    else:
        _print(result, energies)


GRID_MEANING = (
    "F of each cell = min over z of E + lambda R(z), the predictor's error on the cell's "
    "patches from all the others: low = the rest of the picture foretells it"
)


def _mask_grid_energy(
    trained: TrainedModel,
    image: Path,
    cells: int,
    heatmap: Path | None,
    runtime: Runtime,
    cache_dir: Path | None,
    used_threads: int,
    as_json: bool,
) -> None:
    """F of each cell of an image hidden in turn (``energy IMAGE --mask-grid N``)."""
    import numpy as np

    from sslcli.eval.features import pixels_to_batch
    from sslcli.inference.hidden_regions import grid_energies, write_grid_map

    if trained.masked is None:
        raise usage_error(
            "--mask-grid needs a run of train-latent --objective masked (--predict latent); "
            f"{trained.description} is not one",
            "train one: sslcli train-latent DIR --objective masked --backbone vit-tiny",
        )
    decoded = decode([image], trained.size, cache_dir, True, as_json)
    pixels = pixels_to_batch(decoded.pixels[:1], runtime.device, trained.mean, trained.std)
    masked = trained.masked.to(runtime.device)
    energies = grid_energies(masked, pixels[0], cells, runtime)
    if heatmap is not None:
        title = f"F of each cell of {image.name} hidden, from the rest (dark = predictable)"
        write_grid_map(heatmap, np.asarray(decoded.pixels[0]), energies.free_energy, title)
    gap = energies.energy_at_zero - energies.free_energy
    result = {
        "model": trained.description,
        "image": decoded.names[0],
        "grid": cells,
        "threads": used_threads,
        "meaning": GRID_MEANING,
        "free_energy": energies.free_energy.tolist(),
        "energy_at_zero": energies.energy_at_zero.tolist(),
        "z_gap": gap.tolist(),
    } | ({"heatmap": str(heatmap)} if heatmap else {})
    if as_json:
        print_json(result)
        return
    table = Table(title=f"F of each cell of {decoded.names[0]}, hidden in turn (row, column)")
    table.add_column("row")
    for column in range(cells):
        table.add_column(str(column), justify="right")
    for row in range(cells):
        table.add_row(str(row), *(f"{value:.4f}" for value in energies.free_energy[row]))
    stderr.print(table)
    stderr.print(f"{GRID_MEANING}; z-gap up to {gap.max():.4f}")
    if heatmap is not None:
        stderr.print(f"map: {heatmap}")


def _video_energy(
    trained: TrainedModel,
    x: Path | None,
    y: Path | None,
    horizon: str | None,
    plot: Path | None,
    runtime: Runtime,
    used_threads: int,
    as_json: bool,
) -> None:
    """F along one video X, or of the clip Y after the clip X."""
    from sslcli.data.video import decode_video, is_video
    from sslcli.engine.budget import parse_duration
    from sslcli.inference.continuations import (
        energy_along,
        past_and_future,
        video_model,
        write_energy_curve,
    )

    assert x is not None
    continuation = video_model(trained)
    if horizon is not None:
        asked = parse_duration(horizon, "--horizon", "0.5s or 2s")
        if abs(asked - continuation.horizon_seconds) > 1e-6:
            raise usage_error(
                f"{trained.description} predicts {continuation.horizon_seconds:g} s ahead, "
                f"not --horizon {asked:g}s",
                f"leave out --horizon, or train a run with --horizon {asked:g}s",
            )
    for path in (x, y):
        if path is not None and not (path.is_file() and is_video(path)):
            what = "does not exist" if not path.exists() else "is not a video file"
            raise usage_error(f"{path} {what}", "give video files (mp4, webm, avi, mkv, mov)")
    fps, size = continuation.fps, trained.size
    result: dict = {
        "model": trained.description,
        "fps": fps,
        "context_frames": continuation.context_frames,
        "horizon": continuation.horizon_seconds,
        "threads": used_threads,
        "meaning": LATENT_MEANING,
    }
    if y is not None:
        if plot is not None:
            raise usage_error("--plot draws F along one video", "give VIDEO alone with --plot")
        past, future = decode_video(x, fps, size), decode_video(y, fps, size)
        result |= {"past": str(x), "future": str(y)}
        result |= past_and_future(trained, past, future, runtime)
        if as_json:
            print_json(result)
        else:
            _print(result | {"x": [x.name], "y": [y.name], "space": "latent"}, None)
        return
    video = decode_video(x, fps, size)
    along = energy_along(trained, video, runtime)
    if plot is not None:
        title = f"F along {x.name}: each frame given the {continuation.context_frames} frames "
        title += f"{continuation.horizon_seconds:g} s before"
        write_energy_curve(plot, along, title)
        result["plot"] = str(plot)
    result["video"] = str(x)
    result["times"] = [round(float(t), 6) for t in along.times]
    result |= {name: values.tolist() for name, values in along.energies.items()}
    if as_json:
        print_json(result)
        return
    energies = along.energies["energy"]
    peak = int(energies.argmax())
    stderr.print(
        f"F along {x.name} ({len(energies)} future frames at {fps:g} fps): min "
        f"{energies.min():.4f}, mean {energies.mean():.4f}, max [bold]{energies[peak]:.4f}[/] "
        f"at {along.times[peak]:.2f} s",
        highlight=False,
    )
    stderr.print(f"[dim]{LATENT_MEANING}; {trained.description}[/]", soft_wrap=True)
    if plot is not None:
        stderr.print(f"plot: {plot}")


def _check_inputs(
    x: Path | None, y: Path | None, pairs: Path | None, matrix: Path | None, heatmap: Path | None
) -> None:
    """X and Y, or --pairs FILE; the matrix outputs need X and Y."""
    if pairs is None and (x is None or y is None):
        raise usage_error(
            "give X and Y, or --pairs FILE",
            "two images or folders (every X-Y pair), or a CSV file of x,y pairs",
        )
    if pairs is not None and x is not None:
        raise usage_error("give X and Y, or --pairs FILE, not both")
    if pairs is not None and (matrix is not None or heatmap is not None):
        raise usage_error(
            "--matrix and --heatmap need X and Y: --pairs scores only the pairs listed",
            "drop them, or give two folders X Y",
        )


def _note_resizing(paths: list[Path], size: int) -> None:
    """Say which images are not already the model's square size (they were resized)."""
    from PIL import Image

    other = []
    for path in paths:
        with Image.open(path) as image:
            if image.size != (size, size):
                other.append(f"{path.name} ({image.size[0]}x{image.size[1]})")
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        stderr.print(
            f"resized to {size}x{size} px, the model's input (shorter side, centre crop): {shown}",
            soft_wrap=True,
            highlight=False,
        )


def _write_csv(path: Path, rows: list[str], columns: list[str], energies: np.ndarray) -> None:
    from sslcli.engine.atomic import atomic_file

    with atomic_file(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["x \\ y", *columns])
        for name, row in zip(rows, energies, strict=True):
            writer.writerow([name, *(f"{value:.6f}" for value in row)])


def _print(result: dict, energies: np.ndarray | None) -> None:
    if "energy" in result:
        stderr.print(f"F({result['x'][0]}, {result['y'][0]}) = [bold]{result['energy']:.4f}[/]")
        if "z_gap" in result:
            stderr.print(
                f"E(z=0) = {result['energy_at_zero']:.4f}, z-gap = {result['z_gap']:.4f}, "
                f"||z*|| = {result['z_norm']:.4f}"
            )
    elif energies is None:
        raise AssertionError("a matrix of energies is printed with them")
    elif "energies" in result:
        table = Table(title=f"energy ({result['space']})", title_justify="left")
        table.add_column("x \\ y")
        for name in result["y"]:
            table.add_column(name, justify="right")
        for name, row in zip(result["x"], energies, strict=True):
            table.add_row(name, *(f"{value:.4f}" for value in row))
        stderr.print(table)
    else:
        stderr.print(
            f"{energies.shape[0]} x {energies.shape[1]} energies: min {energies.min():.4f}, "
            f"mean {energies.mean():.4f}, max {energies.max():.4f}"
        )
    stderr.print(
        f"[dim]{result['meaning']}; {result['model']}, {result['space']}[/]", soft_wrap=True
    )
    for key in ("matrix", "heatmap"):
        if key in result:
            stderr.print(f"{key}: {result[key]}")


def _print_pairs(result: dict) -> None:
    pairs = result["pairs"]
    table = Table(title=f"energy of {len(pairs)} pairs ({result['space']})", title_justify="left")
    columns = {"energy": "F", "energy_at_zero": "E(z=0)", "z_gap": "z-gap", "z_norm": "||z*||"}
    shown = [name for name in columns if name in pairs[0]]
    # the names share what the numbers leave of the terminal; a long path keeps its end
    width = max(12, (stderr.width - 1 - 10 * len(shown)) // 2 - 3)
    table.add_column("x", no_wrap=True)
    table.add_column("y", no_wrap=True)
    for name in shown:
        table.add_column(columns[name], justify="right")
    for pair in pairs[:SHOWN_PAIRS]:
        table.add_row(
            _short(pair["x"], width),
            _short(pair["y"], width),
            *(f"{pair[name]:.4f}" for name in shown),
        )
    stderr.print(table)
    if len(pairs) > SHOWN_PAIRS:
        stderr.print(f"... and {len(pairs) - SHOWN_PAIRS} more pairs (--json gives them all)")
    stderr.print(
        f"[dim]{result['meaning']}; {result['model']}, {result['space']}[/]", soft_wrap=True
    )


def _short(name: str, width: int) -> str:
    """The end of a long path (its file name is what tells pairs apart)."""
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def register(app: typer.Typer) -> None:
    app.command("energy")(energy)
