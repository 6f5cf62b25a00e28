"""``sslcli train-siamese``: joint-embedding SSL on a folder of images."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.view_options import (
    BlurProb,
    CropRatio,
    CropScale,
    FlipProb,
    GrayscaleProb,
    Jitter,
    JitterProb,
    SolarizeProb,
    view_changes,
)
from sslcli.errors import usage_error

if TYPE_CHECKING:
    from sslcli.siamese import SiameseConfig


def train_siamese(
    data: Annotated[
        Path,
        typer.Argument(
            help="Folder of images (class sub-folders give a kNN accuracy).", show_default=False
        ),
    ],
    method: Annotated[str, typer.Option(help="SSL method (sslcli models lists them).")] = "simclr",
    backbone: Annotated[
        str, typer.Option(help="Encoder: resnet18, resnet50, tiny-cnn.")
    ] = "resnet18",
    size: Annotated[
        int, typer.Option(help="Training resolution in pixels (images are decoded once to it).")
    ] = 224,
    small_images: Annotated[
        bool | None,
        typer.Option(
            "--small-images/--no-small-images",
            help="3x3 stride-1 ResNet stem [default: on for --size <= 64].",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[str, typer.Option(help="Augmentation preset for the two views.")] = "simclr",
    crop_scale: CropScale = None,
    crop_ratio: CropRatio = None,
    jitter: Jitter = None,
    jitter_prob: JitterProb = None,
    flip_prob: FlipProb = None,
    grayscale_prob: GrayscaleProb = None,
    blur_prob: BlurProb = None,
    solarize_prob: SolarizeProb = None,
    epochs: Annotated[int, typer.Option(help="Passes over the data.")] = 100,
    batch_size: Annotated[
        int, typer.Option(help="GLOBAL batch: images per step summed over all processes/GPUs.")
    ] = 256,
    optimizer: Annotated[
        str | None,
        typer.Option(help="sgd, lars or adamw [default: the method's].", show_default=False),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Learning rate per 256 images, times global batch/256 [default: the method's].",
            show_default=False,
        ),
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="[default: the method's]", show_default=False)
    ] = None,
    warmup_epochs: Annotated[
        int | None,
        typer.Option(
            help="Linear warm-up, then cosine decay [default: min(10, epochs/10)].",
            show_default=False,
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="NT-Xent temperature (simclr) [default: 0.1].", show_default=False),
    ] = None,
    projector_hidden_dim: Annotated[
        int | None,
        typer.Option(
            help="Hidden width of the projector [default: the method's].", show_default=False
        ),
    ] = None,
    projector_dim: Annotated[
        int | None,
        typer.Option(
            help="Output width of the projector [default: the method's].", show_default=False
        ),
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option(
            help="GPUs, one process each; 0 = CPU [default: 1 if CUDA is present].",
            show_default=False,
        ),
    ] = None,
    cpu_procs: Annotated[int, typer.Option(help="CPU processes (gloo) with --gpus 0.")] = 1,
    precision: Annotated[
        str,
        typer.Option(help="auto, fp32, bf16 or fp16 (auto: bf16 on capable GPUs, fp32 on CPU)."),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for initialisation, data order and views.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run folder [default: runs/siamese-TIME; with --resume, its run].",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue a run: its folder or a checkpoint folder.")
    ] = None,
    knn_every: Annotated[
        int, typer.Option(help="Epochs between kNN evaluations (labelled data).")
    ] = 5,
    checkpoint_every: Annotated[
        int, typer.Option(help="Steps between checkpoints [default: 0 = every epoch].")
    ] = 0,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where decoded images are cached [default: ~/.cache/sslcli/images].",
            show_default=False,
        ),
    ] = None,
    stop_on_collapse: Annotated[
        bool, typer.Option(help="Stop (with a checkpoint) when the embeddings collapse.")
    ] = False,
    strict: Annotated[
        bool, typer.Option(help="Fail on the first unreadable image instead of skipping it.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Write the run's result to stdout.")
    ] = False,
) -> None:
    """Train a joint-embedding (siamese) encoder on a folder of images."""
    import torch

    from sslcli.data.cache import default_cache_dir
    from sslcli.engine.atomic import write_text_atomic
    from sslcli.engine.checkpoint import CHECKPOINTS_FOLDER, resolve_resume
    from sslcli.engine.launch import launch, plan_launch
    from sslcli.siamese import ENCODER_FOLDER, RESULT_FILE, resolve_config
    from sslcli.siamese import train_siamese as worker

    plan = plan_launch(gpus, cpu_procs, torch.cuda.device_count(), os.environ)
    main_process = os.environ.get("RANK", "0") == "0"
    config = resolve_config(
        plan.processes,
        data=str(data),
        method=method,
        backbone=backbone,
        size=size,
        small_images=small_images,
        preset=preset,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr_per_256=lr,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        method_options={
            name: value
            for name, value in (
                ("temperature", temperature),
                ("hidden_dim", projector_hidden_dim),
                ("projection_dim", projector_dim),
            )
            if value is not None
        },
        view_changes=view_changes(
            crop_scale,
            crop_ratio,
            jitter,
            jitter_prob,
            flip_prob,
            grayscale_prob,
            blur_prob,
            solarize_prob,
        ),
        seed=seed,
        precision=precision,
        knn_every=knn_every,
        cache_dir=str(cache_dir or default_cache_dir()),
        strict=strict,
        checkpoint_every=checkpoint_every,
        stop_on_collapse=stop_on_collapse,
    )
    checkpoint = resolve_resume(resume) if resume is not None else None
    if checkpoint is not None and out is None:
        out = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_FOLDER else None
    run_dir = out or Path("runs") / time.strftime("siamese-%Y%m%d-%H%M%S")
    resuming_here = checkpoint is not None and checkpoint.resolve().is_relative_to(
        run_dir.resolve()
    )
    if not resuming_here and (run_dir / CHECKPOINTS_FOLDER).exists():
        raise usage_error(
            f"{run_dir} already holds a run",
            f"continue it with --resume {run_dir}, or choose another --out",
        )
    if main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.json", json.dumps(config.as_dict(), indent=2))
        if not as_json:
            _print_settings(config, plan.device_type, run_dir, checkpoint)
    launch(plan, precision, seed, worker, config, run_dir, checkpoint)
    if not main_process:
        return
    result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    if as_json:
        print_json(result | {"run": str(run_dir), "encoder": str(run_dir / ENCODER_FOLDER)})
        return
    _print_result(result, run_dir / ENCODER_FOLDER)
    if result["interrupted"]:
        hint = f"sslcli train-siamese {data} --resume {run_dir}"
        stderr.print(f"stopped at step {result['step']}; continue with: {hint}", soft_wrap=True)


def _print_settings(
    config: SiameseConfig, device_type: str, run_dir: Path, checkpoint: Path | None
) -> None:
    table = Table(title="train-siamese", title_justify="left", show_header=False)
    table.add_row("data", config.data)
    table.add_row(
        "method / backbone",
        f"{config.method} / {config.backbone} ({config.size} px"
        + (", small-image stem)" if config.small_images else ")"),
    )
    table.add_row("devices", f"{config.world_size} x {device_type}, precision {config.precision}")
    table.add_row("batch", f"{config.batch_size} global = {config.per_device_batch} per process")
    table.add_row(
        "optimiser",
        f"{config.optimizer}, lr {config.lr:.4g} (= {config.lr_per_256:g} x "
        f"{config.batch_size}/256), weight decay {config.weight_decay:g}",
    )
    table.add_row("schedule", f"{config.epochs} epochs, {config.warmup_epochs} warm-up, cosine")
    table.add_row(
        "run folder", str(run_dir) + (f" (resuming {checkpoint.name})" if checkpoint else "")
    )
    stderr.print(table)


def _print_result(result: dict, encoder: Path) -> None:
    table = Table(title="result", title_justify="left", show_header=False)
    table.add_row("steps", str(result["step"]))
    for name in ("loss", "embedding_std", "knn_accuracy", "images_per_s"):
        if name in result:
            table.add_row(name.replace("_", " "), f"{result[name]:.4g}")
    table.add_row("encoder", str(encoder))
    stderr.print(table)


def register(app: typer.Typer) -> None:
    app.command("train-siamese")(train_siamese)
