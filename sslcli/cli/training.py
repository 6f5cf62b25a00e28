"""What the training commands (``train-siamese``, ``train-latent``) share: their common
options (``--precision``, ``--cache-dir`` and ``--strict`` as the model commands have them),
and the run itself: settings resolved, run folder prepared, processes launched, result
reported."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.errors import usage_error

if TYPE_CHECKING:
    from sslcli.siamese import SiameseConfig

Data = Annotated[
    Path,
    typer.Argument(
        help="Folder of images (class sub-folders give a kNN accuracy).", show_default=False
    ),
]

Backbone = Annotated[str, typer.Option(help="Encoder: resnet18, resnet50, tiny-cnn, small-cnn.")]

Size = Annotated[
    int, typer.Option(help="Training resolution in pixels (images are decoded once to it).")
]

SmallImages = Annotated[
    bool | None,
    typer.Option(
        "--small-images/--no-small-images",
        help="3x3 stride-1 ResNet stem \\[default: on for --size <= 64].",
        show_default=False,
    ),
]

PresetName = Annotated[str, typer.Option(help="Augmentation preset for the two views.")]

Epochs = Annotated[int, typer.Option(help="Passes over the data.")]

BatchSize = Annotated[
    int, typer.Option(help="GLOBAL batch: images per step summed over all processes/GPUs.")
]

Optimizer = Annotated[
    str | None,
    typer.Option(help="sgd, lars or adamw \\[default: the method's].", show_default=False),
]

Lr = Annotated[
    float | None,
    typer.Option(
        help="Learning rate per 256 images, times global batch/256 \\[default: the method's].",
        show_default=False,
    ),
]

WeightDecay = Annotated[
    float | None, typer.Option(help="\\[default: the method's]", show_default=False)
]

WarmupEpochs = Annotated[
    int | None,
    typer.Option(
        help="Linear warm-up, then cosine decay \\[default: min(10, epochs/10)].",
        show_default=False,
    ),
]

ProjectorHiddenDim = Annotated[
    int | None,
    typer.Option(
        help="Hidden width of the projector \\[default: the method's].", show_default=False
    ),
]

ProjectorDim = Annotated[
    int | None,
    typer.Option(
        help="Output width of the projector \\[default: the method's].", show_default=False
    ),
]

Gpus = Annotated[
    int | None,
    typer.Option(
        help="GPUs, one process each; 0 = CPU \\[default: 1 if CUDA is present].",
        show_default=False,
    ),
]

CpuProcs = Annotated[int, typer.Option(help="CPU processes (gloo) with --gpus 0.")]


Seed = Annotated[int, typer.Option(help="Seed for initialisation, data order and views.")]

Out = Annotated[
    Path | None,
    typer.Option(
        help="Run folder \\[default: runs/KIND-TIME; with --resume, its run].",
        show_default=False,
    ),
]

Resume = Annotated[
    Path | None, typer.Option(help="Continue a run: its folder or a checkpoint folder.")
]

KnnEvery = Annotated[int, typer.Option(help="Epochs between kNN evaluations (labelled data).")]

EvalDir = Annotated[
    Path | None,
    typer.Option(
        help="Labelled folder (class sub-folders) for the kNN and probe accuracy "
        "\\[default: DATA itself when it has classes].",
        show_default=False,
    ),
]

OnlineProbe = Annotated[
    bool,
    typer.Option(
        help="Train a linear classifier on the detached features while training "
        "(needs class sub-folders in DATA); its accuracy is logged.",
    ),
]

CheckpointEvery = Annotated[
    int, typer.Option(help="Steps between checkpoints \\[default: 0 = every epoch].")
]


StopOnCollapse = Annotated[
    bool, typer.Option(help="Stop (with a checkpoint) when the embeddings collapse.")
]


AsJson = Annotated[bool, typer.Option("--json", help="Write the run's result to stdout.")]


VIEW_OPTIONS = (
    "crop_scale",
    "crop_ratio",
    "jitter",
    "jitter_prob",
    "flip_prob",
    "grayscale_prob",
    "blur_prob",
    "solarize_prob",
    "rotation",
)
PASSED_ON = (
    "backbone", "size", "small_images", "preset", "epochs", "batch_size", "optimizer",
    "weight_decay", "warmup_epochs", "seed", "precision", "knn_every", "strict",
    "checkpoint_every", "stop_on_collapse", "gpus", "cpu_procs", "cache_dir", "online_probe",
)  # fmt: skip


def run_command(
    command: str, arguments: dict[str, Any], method: str, method_options: dict[str, Any]
) -> None:
    """Train from a training command's arguments (its parameters by name); the method's own
    options that are None (not given) take the method's defaults."""
    from sslcli.cli.view_options import view_changes

    start_run(
        command,
        arguments["resume"],
        arguments["out"],
        arguments["as_json"],
        data=str(arguments["data"]),
        eval_dir=None if arguments["eval_dir"] is None else str(arguments["eval_dir"]),
        method=method,
        lr_per_256=arguments["lr"],
        method_options={name: v for name, v in method_options.items() if v is not None},
        view_changes=view_changes(*(arguments[name] for name in VIEW_OPTIONS)),
        **{name: arguments[name] for name in PASSED_ON},
    )


def start_run(
    command: str,
    resume: Path | None,
    out: Path | None,
    as_json: bool,
    gpus: int | None,
    cpu_procs: int,
    cache_dir: Path | None,
    **options: Any,
) -> None:
    """Resolve the settings, prepare the run folder, train in every process, report."""
    import torch

    from sslcli.data.cache import default_cache_dir
    from sslcli.engine.atomic import write_text_atomic
    from sslcli.engine.checkpoint import CHECKPOINTS_FOLDER, resolve_resume
    from sslcli.engine.launch import launch, plan_launch
    from sslcli.engine.run_lock import run_folder_lock
    from sslcli.siamese import ENCODER_FOLDER, RESULT_FILE, resolve_config
    from sslcli.siamese import train_siamese as worker

    plan = plan_launch(gpus, cpu_procs, torch.cuda.device_count(), os.environ)
    main_process = os.environ.get("RANK", "0") == "0"
    config = resolve_config(
        plan.processes, cache_dir=str(cache_dir or default_cache_dir()), **options
    )
    checkpoint = resolve_resume(resume) if resume is not None else None
    if checkpoint is not None and out is None:
        out = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_FOLDER else None
    prefix = command.removeprefix("train-")
    run_dir = out or Path("runs") / time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    resuming_here = checkpoint is not None and checkpoint.resolve().is_relative_to(
        run_dir.resolve()
    )
    # the main process holds the folder from before the check until training ends, so two
    # runs started with one --out cannot both pass the check and write over each other
    with run_folder_lock(run_dir) if main_process else contextlib.nullcontext():
        if not resuming_here and (run_dir / CHECKPOINTS_FOLDER).exists():
            raise usage_error(
                f"{run_dir} already holds a run",
                f"continue it with --resume {run_dir}, or choose another --out",
            )
        if main_process:
            write_text_atomic(run_dir / "config.json", json.dumps(config.as_dict(), indent=2))
            if not as_json:
                _print_settings(command, config, plan.device_type, run_dir, checkpoint)
        launch(plan, config.precision, config.seed, worker, config, run_dir, checkpoint)
    if not main_process:
        return
    result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    if as_json:
        print_json(result | {"run": str(run_dir), "encoder": str(run_dir / ENCODER_FOLDER)})
        return
    _print_result(result, run_dir / ENCODER_FOLDER)
    if result["interrupted"]:
        hint = f"sslcli {command} {config.data} --resume {run_dir}"
        stderr.print(f"stopped at step {result['step']}; continue with: {hint}", soft_wrap=True)


def _print_settings(
    command: str, config: SiameseConfig, device_type: str, run_dir: Path, checkpoint: Path | None
) -> None:
    table = Table(title=command, title_justify="left", show_header=False)
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
    for name in (
        "loss",
        "energy",
        "z_gap",
        "z_norm",
        "embedding_std",
        "knn_accuracy",
        "probe_accuracy",
        "images_per_s",
    ):
        if name in result:
            table.add_row(name.replace("_", " "), f"{result[name]:.4g}")
    table.add_row("encoder", str(encoder))
    stderr.print(table)
