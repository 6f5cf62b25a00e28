"""``sslcli eval``: kNN accuracy, linear probe and collapse metrics on a labelled folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import (
    AsJson,
    BackboneSpace,
    BatchSize,
    CacheDir,
    ModelName,
    OneDevice,
    Precision,
    Size,
    Strict,
    Threads,
    decode,
    load_model_saying_which,
    plan_one_device,
)


def evaluate(
    data: Annotated[
        Path,
        typer.Argument(
            help="Labelled folder: one sub-folder of images per class.", show_default=False
        ),
    ],
    model: ModelName = None,
    test_dir: Annotated[
        Path | None,
        typer.Option(
            help="Labelled test folder \\[default: hold out --test-fraction of DATA].",
            show_default=False,
        ),
    ] = None,
    test_fraction: Annotated[
        float, typer.Option(help="Share of each class held out for testing (without --test-dir).")
    ] = 0.2,
    k: Annotated[int, typer.Option("--k", help="Neighbours of the kNN vote.")] = 200,
    temperature: Annotated[float, typer.Option(help="Temperature of the kNN vote weights.")] = 0.1,
    space: BackboneSpace = None,
    size: Size = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the held-out split and of a random-init model's weights.")
    ] = 0,
    gpus: OneDevice = None,
    precision: Precision = "auto",
    threads: Threads = None,
    batch_size: BatchSize = 256,
    cache_dir: CacheDir = None,
    strict: Strict = False,
    as_json: AsJson = False,
) -> None:
    """Evaluate an encoder's features on labelled images: kNN (k=200, T=0.1, cosine,
    weighted votes), a linear probe, and the collapse metrics."""
    from sslcli.engine.runtime import make_runtime, set_threads
    from sslcli.eval.report import encode_labels, evaluate_features, stratified_split
    from sslcli.inference.embedding import embed_pixels

    plan = plan_one_device(gpus, "eval")
    used_threads = set_threads(threads)
    trained = load_model_saying_which(model, size, as_json, seed)
    chosen_space = space or "backbone"
    trained.encoder(chosen_space)
    runtime = make_runtime(plan.device_type, precision, seed)
    train = decode([data], trained.size, cache_dir, strict, as_json, labelled=True)
    train_features = embed_pixels(
        trained, train.pixels, runtime, chosen_space, batch_size, not as_json
    )
    if test_dir is not None:
        test = decode([test_dir], trained.size, cache_dir, strict, as_json, labelled=True)
        test_features = embed_pixels(
            trained, test.pixels, runtime, chosen_space, batch_size, not as_json
        )
        train_classes, test_classes = train.labels, test.labels
        split = f"test folder {test_dir}"
    else:
        kept, held = stratified_split(train.labels, test_fraction, seed)
        test_features, train_features = train_features[held], train_features[kept]
        train_classes = [train.labels[i] for i in kept]
        test_classes = [train.labels[i] for i in held]
        split = f"{test_fraction:.0%} of each class held out (seed {seed})"
    train_labels, test_labels = encode_labels(train_classes, test_classes)
    report = evaluate_features(
        train_features, train_labels, test_features, test_labels, k, temperature
    )
    result = {"model": trained.description, "space": chosen_space, "split": split}
    result["threads"] = used_threads
    result |= report.as_dict()
    if as_json:
        print_json(result)
    else:
        _print(result)


def _print(result: dict) -> None:
    table = Table(title="eval", title_justify="left", show_header=False)
    table.add_row("model", f"{result['model']}, {result['space']} features")
    table.add_row(
        "images",
        f"{result['train_images']} train, {result['test_images']} test, "
        f"{result['classes']} classes ({result['split']})",
    )
    table.add_row(
        "kNN accuracy",
        f"[bold]{result['knn_accuracy']:.4f}[/] (k={result['k']}, T={result['temperature']:g})",
    )
    table.add_row("linear probe accuracy", f"[bold]{result['linear_probe_accuracy']:.4f}[/]")
    table.add_row(
        "embedding std",
        f"{result['embedding_std']:.4f} (healthy about "
        f"{result['dimensions'] ** -0.5:.4f}, collapsed 0)",
    )
    table.add_row(
        "effective rank", f"{result['effective_rank']:.1f} of {result['dimensions']} dimensions"
    )
    stderr.print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
