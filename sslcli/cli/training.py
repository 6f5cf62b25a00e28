"""What the training commands (``train-siamese``, ``train-latent``) share: their common
options (``--precision``, ``--cache-dir`` and ``--strict`` as the model commands have them),
and showing a run: its settings before it starts, its result after."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr

if TYPE_CHECKING:
    from sslcli.training.config import TrainingConfig, TrainingRequest
    from sslcli.training.run import Devices, Start

Data = Annotated[
    Path | None,
    typer.Argument(
        help="Folder of images (class sub-folders give a kNN accuracy), of videos (their "
        "frames at --fps), or shards written by sslcli pack (their folder or shards.json); "
        "with --resume, the run's own unless given.",
        show_default=False,
    ),
]

Backbone = Annotated[
    str,
    typer.Option(
        help="Encoder: resnet18, resnet50, vit-tiny, vit-small, vit-base, tiny-cnn, small-cnn, "
        "or timm:NAME for any timm model (random weights; sslcli models lists them)."
    ),
]

PatchSize = Annotated[
    int | None,
    typer.Option(
        help="ViTs: patch side in pixels \\[default: 16, or 4 at --size <= 64].",
        show_default=False,
    ),
]

DropPath = Annotated[
    float, typer.Option(help="ViTs and timm models: stochastic-depth rate (DINO's ViT-S: 0.1).")
]

Size = Annotated[int, typer.Option(help="Training resolution in pixels: the side of a view.")]

StoreSize = Annotated[
    int | None,
    typer.Option(
        help="Shorter side images are stored at, decoded once (never enlarged, aspect kept); "
        "views are cut from the whole stored image \\[default: 8/7 x --size, 256 for 224].",
        show_default=False,
    ),
]

SmallImages = Annotated[
    bool | None,
    typer.Option(
        "--small-images/--no-small-images",
        help="3x3 stride-1 ResNet stem \\[default: on for --size <= 64].",
        show_default=False,
    ),
]

PresetName = Annotated[
    str | None,
    typer.Option(
        help="Augmentation preset of the views \\[default: the method's: dino (2 global + 6 "
        "local crops) for dino, ibot and lejepa; vicreg for train-latent, minimal for its "
        "masked objective; else simclr].",
        show_default=False,
    ),
]

LocalCrops = Annotated[
    int | None,
    typer.Option(
        help="dino, ibot, lejepa: local crops after the 2 global views \\[default: the preset's, 6 "
        "for dino].",
        show_default=False,
    ),
]

LocalSize = Annotated[
    int | None,
    typer.Option(
        help="Side of the local crops \\[default: 3/7 of --size to a multiple of 8: 96 at 224, "
        "16 at 32].",
        show_default=False,
    ),
]

Epochs = Annotated[int, typer.Option(help="Passes over the data.")]

BatchSize = Annotated[
    str,
    typer.Option(
        help="GLOBAL batch: images per step summed over all processes/GPUs; 'auto' (GPUs): "
        "the largest that fits, measured before the first step and printed."
    ),
]


def parse_batch_size(text: str) -> int:
    """--batch-size: a number, or 'auto' (``AUTO_BATCH``)."""
    from sslcli.errors import usage_error
    from sslcli.training.config import AUTO_BATCH

    if text.strip().lower() == "auto":
        return AUTO_BATCH
    try:
        return int(text)
    except ValueError:
        raise usage_error(
            f"--batch-size takes a number or auto, got {text!r}", "e.g. --batch-size 256"
        ) from None


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
        help="Linear warm-up, then cosine decay \\[default: min(10, epochs/10); VICReg at "
        "least 5, at most half the run].",
        show_default=False,
    ),
]

Compile = Annotated[
    bool,
    typer.Option(
        "--compile/--no-compile",
        help="Run the backbone through torch.compile: the first steps compile it (a minute or "
        "more), the others may run faster; on the CPU it needs a C++ compiler.",
    ),
]

TensorBoard = Annotated[
    bool,
    typer.Option(
        "--tensorboard/--no-tensorboard",
        help="Also write TensorBoard event files to RUN/tensorboard: the metrics, the first "
        "step's views and, at the end, the evaluation images' embeddings for the projector "
        "(pip install 'sslcli\\[tensorboard]'; metrics.jsonl stays the record).",
    ),
]

TimeBudgetOption = Annotated[
    str | None,
    typer.Option(
        "--time-budget",
        help="Train for this long (90s, 10m, 1.5h), start-up included: a few timed steps "
        "plan the run's steps so the schedule completes on time; --epochs then sets only "
        "the warm-up share.",
        show_default=False,
    ),
]

FinalWeightDecay = Annotated[
    float | None,
    typer.Option(
        help="Weight decay a cosine raises --weight-decay to by the end \\[default: the "
        "method's: 0.4 for dino, else constant].",
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

Streams = Annotated[
    int | None,
    typer.Option(
        help="Shards only: canonical streams the shards are dealt to; the processes must "
        "divide it, the batch must be a multiple of it, and the data order depends on it, not "
        "on the processes \\[default: 8].",
        show_default=False,
    ),
]

ShardUrl = Annotated[
    str | None,
    typer.Option(
        help="Shards only: where they are, a template with {name}, e.g. "
        "'pipe:aws s3 cp s3://bucket/shards/{name} -' \\[default: beside shards.json].",
        show_default=False,
    ),
]


Seed = Annotated[int, typer.Option(help="Seed for initialisation, data order and views.")]

Out = Annotated[
    Path | None,
    typer.Option(
        help="Run folder \\[default: runs/KIND-TIME; with --resume, its run].",
        show_default=False,
    ),
]

Resume = Annotated[
    Path | None,
    typer.Option(
        help="Continue a run (its folder or a checkpoint folder) with its own settings; "
        "--epochs, --lr, --weight-decay, --warmup-epochs and --precision given with it "
        "change them (the schedule is re-planned).",
        show_default=False,
    ),
]

Init = Annotated[
    Path | None,
    typer.Option(
        help="Start a new run from a trained encoder: a run, checkpoint or encoder/ folder "
        "(fine-tuning on new data; the heads start afresh).",
        show_default=False,
    ),
]

KnnEvery = Annotated[int, typer.Option(help="Epochs between kNN evaluations (labelled data).")]

Fps = Annotated[
    float | None,
    typer.Option(
        help="DATA of videos: the rate their frames are sampled at, each frame an image to cut "
        "views from (or, with --pairs future, a moment) \\[default: 10].",
        show_default=False,
    ),
]

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


def given(**options: object) -> dict[str, object]:
    """The options that were given on the command line (None: left to the default)."""
    return {name: value for name, value in options.items() if value is not None}


def typed_on_command_line(ctx: typer.Context, renamed: dict[str, str]) -> frozenset[str]:
    """The names of the parameters the user typed (not left at their defaults), as the
    settings object names them (``renamed`` maps parameter names that differ)."""
    # by name: Typer's click and the click package have separate enums
    defaults = ("DEFAULT", "DEFAULT_MAP")
    typed = (
        n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "") not in defaults
    )
    return frozenset(renamed.get(name, name) for name in typed)


def train_and_report(
    command: str, request: TrainingRequest, devices: Devices, out: Path | None,
    resume: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Run the training and show it: the settings before the processes start, the result
    (or how to continue an interrupted run) after."""
    from sslcli.training.run import run_training

    def announce(start: Start) -> None:
        if not as_json:
            _print_settings(command, start)

    outcome = run_training(command.removeprefix("train-"), request, devices, out, resume, announce)
    if outcome is None:  # a process of torchrun's other than the first
        return
    result = outcome.result
    if as_json:
        print_json(result | {"run": str(outcome.run_dir), "encoder": str(outcome.encoder)})
        return
    _print_result(result, outcome.encoder)
    if result["interrupted"]:
        hint = f"sslcli {command} --resume {outcome.run_dir}"
        stderr.print(f"stopped at step {result['step']}; continue with: {hint}", soft_wrap=True)


def _print_settings(command: str, start: Start) -> None:
    config, run_dir, checkpoint = start.config, start.run_dir, start.checkpoint
    table = Table(title=command, title_justify="left", show_header=False)
    table.add_row("data", config.data)
    shape = f"{config.size} px"
    if config.patch_size is not None:
        shape += f", patch {config.patch_size}"
    elif config.small_images and config.backbone.startswith("resnet"):
        shape += ", small-image stem"
    table.add_row("method / backbone", f"{config.method} / {config.backbone} ({shape})")
    if config.local_crops:
        table.add_row(
            "views",
            f"{config.preset}: 2 global at {config.size} px + {config.local_crops} local at "
            f"{config.local_size} px",
        )
    table.add_row(
        "devices", f"{config.world_size} x {start.device_type}, precision {config.precision}"
    )
    from sslcli.training.config import AUTO_BATCH

    if config.batch_size == AUTO_BATCH:
        table.add_row("batch", "auto: the largest that fits, measured on the GPU before step 1")
        lr = f"{config.lr_per_256:g} x batch/256"
    else:
        table.add_row(
            "batch", f"{config.batch_size} global = {config.per_device_batch} per process"
        )
        lr = f"{config.lr:.4g} (= {config.lr_per_256:g} x {config.batch_size}/256)"
    table.add_row(
        "optimiser",
        f"{config.optimizer}, lr {lr}, weight decay {config.weight_decay:g}"
        + (
            f" -> {config.final_weight_decay:g} (cosine)"
            if config.final_weight_decay is not None
            else ""
        ),
    )
    table.add_row("schedule", _schedule(config))
    table.add_row(
        "run folder", str(run_dir) + (f" (resuming {checkpoint.name})" if checkpoint else "")
    )
    if config.init is not None:
        table.add_row("encoder from", config.init)
    for name, (before, after) in start.changed.items():
        table.add_row("changed", f"{name}: {before} -> {after} (the schedule is re-planned)")
    stderr.print(table)


def _schedule(config: TrainingConfig) -> str:
    if config.steps is not None:
        return f"{config.steps} steps planned from a time budget, cosine"
    if config.time_budget is not None:
        return (
            f"planned from {config.time_budget:g} s after a few timed steps, "
            f"{config.warmup_epochs / config.epochs:.0%} warm-up, cosine"
        )
    return f"{config.epochs} epochs, {config.warmup_epochs} warm-up, cosine"


FLOORS = {"knn_raw_pixels": "raw pixels", "knn_random_init": "the untrained encoder"}


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
    if "knn_accuracy" in result:
        table.add_row("kNN floors", _floors(result))
    table.add_row("encoder", str(encoder))
    stderr.print(table)


def _floors(result: dict) -> str:
    """How the kNN accuracy compares with what no training gives."""
    accuracy = result["knn_accuracy"]
    parts = [
        f"{'above' if accuracy > result[key] else 'not above'} {words} ({result[key]:.3f})"
        for key, words in FLOORS.items()
        if key in result
    ]
    return "; ".join(parts) if parts else "not measured"
