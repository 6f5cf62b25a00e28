"""``sslcli embed``: the representations of a folder of images, and their nearest neighbours."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import (
    AsJson,
    BackboneSpace,
    BatchSize,
    CacheDir,
    CpuProcs,
    Gpus,
    ModelName,
    Precision,
    ShardThreads,
    Size,
    Strict,
    decode,
    load_model_saying_which,
    plan_devices,
)
from sslcli.errors import usage_error

if TYPE_CHECKING:
    import torch

    from sslcli.inference.embedding import DecodedSet


def embed(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Image files or folders (walked recursively); or videos: each frame at --fps.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Embeddings file: .npy (+ NAME.names.json), .safetensors, .csv "
            "or .parquet (needs pyarrow).",
        ),
    ],
    model: ModelName = None,
    space: BackboneSpace = None,
    size: Size = None,
    knn: Annotated[
        int, typer.Option(help="Also find each image's K nearest neighbours (cosine).")
    ] = 0,
    knn_out: Annotated[
        Path | None,
        typer.Option(
            help="Where the neighbours go (.csv or .json) \\[default: OUT.knn.csv].",
            show_default=False,
        ),
    ] = None,
    map_path: Annotated[
        Path | None,
        typer.Option(
            "--map",
            help="Also draw the embeddings as a 2-D map (.png): points coloured by class when "
            "the input is one folder of class sub-folders, a few thumbnails spread over it.",
            show_default=False,
        ),
    ] = None,
    map_method: Annotated[
        str,
        typer.Option(
            help="How --map projects the embeddings: umap (needs umap-learn), pca, or auto "
            "(umap when umap-learn is installed, else pca)."
        ),
    ] = "auto",
    fps: Annotated[
        float | None,
        typer.Option(
            help="Videos: frames per second embedded \\[default: a video run's rate, else 10].",
            show_default=False,
        ),
    ] = None,
    gpus: Gpus = None,
    cpu_procs: CpuProcs = 1,
    precision: Precision = "auto",
    threads: ShardThreads = None,
    batch_size: BatchSize = 256,
    cache_dir: CacheDir = None,
    strict: Strict = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    as_json: AsJson = False,
) -> None:
    """Write the embeddings of images (one row per image, names kept, in input order), or of
    videos' frames sampled at --fps (one row per frame, named VIDEO@SECONDSs)."""
    from sslcli.data.embeddings import check_format, write_embeddings
    from sslcli.engine.runtime import set_threads
    from sslcli.inference.embedding import decode_video_inputs, embed_sharded, holds_videos

    check_format(out)
    knn_out = _knn_path(out, knn, knn_out)
    projection_method = _map_method(map_path, map_method)
    for target in (out, knn_out, map_path):
        if target is not None and target.exists() and not overwrite:
            raise usage_error(f"{target} already exists", "pass --overwrite to replace it")
    if batch_size < 1:
        raise usage_error(f"--batch-size must be 1 or more, got {batch_size}")
    set_threads(threads)  # the neighbours are found in this process
    plan = plan_devices(gpus, cpu_procs)
    trained = load_model_saying_which(model, size, as_json)
    frames_of: dict[str, float] = {}  # videos: how many the rows are frames of, at what rate
    if holds_videos(inputs):
        from sslcli.cli.model_options import report_skipped
        from sslcli.data.cache import default_cache_dir
        from sslcli.data.clips import DEFAULT_FPS

        rate = fps or trained.fps or DEFAULT_FPS
        cache = cache_dir or default_cache_dir()
        images = decode_video_inputs(inputs, rate, trained.size, cache, not as_json)
        frames_of = {"videos": len(images.paths), "fps": rate}
        report_skipped(images.failures)
    else:
        if fps is not None:
            raise usage_error("--fps samples videos' frames", "give videos, or leave out --fps")
        labelled = map_path is not None and _class_folders(inputs)
        images = decode(inputs, trained.size, cache_dir, strict, as_json, labelled)
    if map_path is not None and len(images.names) < 3:
        raise usage_error(
            f"--map needs 3 images or more, and only {len(images.names)} could be used",
            "give more images, or drop --map",
        )
    chosen_space = space or "backbone"
    trained.encoder(chosen_space)  # a clear error before any process starts
    started = time.perf_counter()
    embedded = embed_sharded(
        plan, precision, trained, images, chosen_space, batch_size, not as_json, threads
    )
    embeddings = embedded.embeddings
    seconds = time.perf_counter() - started
    written = write_embeddings(out, images.names, embeddings.numpy())
    result = {
        "images": len(images.names),
        "dimensions": embeddings.shape[1],
        "space": chosen_space,
        "model": trained.description,
        "files": [str(path) for path in written],
        "skipped": [failure.message for failure in images.failures],
        "images_per_s": len(images.names) / seconds,
        "threads": embedded.threads,
    } | frames_of
    if knn_out is not None:
        pairs = _write_neighbours(knn_out, images.names, embeddings, knn)
        result |= {"knn_file": str(knn_out), "closest_pairs": pairs}
    if map_path is not None:
        subject = f"{trained.description}, {chosen_space} space"
        result |= _write_map(map_path, projection_method, embeddings, images, subject)
        _map_to_board(model, map_path)
    if as_json:
        print_json(result)
    else:
        _print_result(result)


def _knn_path(out: Path, knn: int, knn_out: Path | None) -> Path | None:
    if knn < 0:
        raise usage_error(f"--knn must be 0 or more, got {knn}")
    if knn == 0:
        if knn_out is not None:
            raise usage_error("--knn-out needs --knn K", "e.g. --knn 5 --knn-out neighbours.csv")
        return None
    path = knn_out or out.with_name(out.stem + ".knn.csv")
    if path.suffix.lower() not in (".csv", ".json"):
        raise usage_error(
            f"cannot tell the format of {path}", "end the file name with .csv or .json"
        )
    return path


def _map_method(map_path: Path | None, requested: str) -> str | None:
    """The projection ``--map`` will use (None without ``--map``), refused before any work."""
    if map_path is None:
        if requested != "auto":
            raise usage_error("--map-method needs --map PATH.png", "e.g. --map map.png")
        return None
    if map_path.suffix.lower() != ".png":
        raise usage_error(
            f"--map draws a PNG: {map_path} does not end with .png", "e.g. --map map.png"
        )
    from sslcli.inference.embedding_map import choose_method

    return choose_method(requested)


def _class_folders(inputs: list[Path]) -> bool:
    """Whether ``inputs`` is one folder of class sub-folders (the map colours its classes)."""
    from sslcli.data.folder import scan_image_folder

    return (
        len(inputs) == 1 and inputs[0].is_dir() and scan_image_folder(inputs[0]).labels is not None
    )


def _write_map(
    path: Path, method: str, embeddings: torch.Tensor, images: DecodedSet, subject: str
) -> dict:
    """Draw the map of ``embeddings`` to ``path``; what the result says of it."""
    from sslcli.inference.embedding_map import project, write_embedding_map

    projection = project(embeddings, method)
    write_embedding_map(path, projection, images.pixels, images.labels, subject)
    said = {"map": str(path), "map_projection": projection.method}
    if projection.explained_variance is not None:
        said["map_explained_variance"] = projection.explained_variance
    return said


def _map_to_board(model: str | None, map_path: Path) -> None:
    """The map also goes to the TensorBoard events of the run it embeds with, if it has them."""
    from sslcli.engine.tensorboard import TENSORBOARD_FOLDER, TensorBoardLog
    from sslcli.runs.layout import newest_run

    run = Path(model) if model is not None else newest_run(Path("runs"))
    if (run / TENSORBOARD_FOLDER).is_dir():
        board = TensorBoardLog(run)
        board.image("embedding_map", map_path)
        board.close()


def _write_neighbours(path: Path, names: list[str], embeddings: object, k: int) -> list[dict]:
    """Write each image's neighbours; return the five most similar pairs (duplicates first)."""
    from sslcli.engine.atomic import atomic_file
    from sslcli.eval.neighbours import nearest_neighbours

    indices, similarities = nearest_neighbours(embeddings, k)
    rows = [
        {"name": names[i], "rank": r + 1, "neighbour": names[j], "similarity": float(s)}
        for i, (row, sims) in enumerate(zip(indices.tolist(), similarities.tolist(), strict=True))
        for r, (j, s) in enumerate(zip(row, sims, strict=True))
    ]
    with atomic_file(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as f:
        if path.suffix.lower() == ".json":
            json.dump(rows, f, indent=1)
        else:
            writer = csv.DictWriter(f, fieldnames=["name", "rank", "neighbour", "similarity"])
            writer.writeheader()
            writer.writerows(rows)
    closest = {
        tuple(sorted((row["name"], row["neighbour"]))): row["similarity"]
        for row in rows
        if row["rank"] == 1
    }
    ranked = sorted(closest.items(), key=lambda item: -item[1])[:5]
    return [{"name": a, "neighbour": b, "similarity": s} for (a, b), s in ranked]


def _print_result(result: dict) -> None:
    table = Table(title="embed", title_justify="left", show_header=False)
    rows = f"{result['images']}"
    if "videos" in result:
        rows += f" frames of {result['videos']} video(s) at {result['fps']:g} fps"
    table.add_row("images", f"{rows} ({result['images_per_s']:.1f} images/s)")
    table.add_row("dimensions", f"{result['dimensions']} ({result['space']})")
    table.add_row("written", "\n".join(result["files"]))
    if "knn_file" in result:
        table.add_row("neighbours", result["knn_file"])
        for pair in result["closest_pairs"]:
            table.add_row(
                "closest pair", f"{pair['name']} ~ {pair['neighbour']}: {pair['similarity']:.4f}"
            )
    if "map" in result:
        how = result["map_projection"].upper()
        if "map_explained_variance" in result:
            how += f", {100 * result['map_explained_variance']:.1f}% of the variance"
        table.add_row("map", f"{result['map']} ({how})")
    stderr.print(table)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
