"""Options of the commands that use a trained model (``embed``, ``energy``, ``eval``), and the
steps they share: load the model (saying which), pick the device, decode the images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sslcli.cli.console import stderr
from sslcli.errors import SSLError, usage_error

if TYPE_CHECKING:
    from sslcli.engine.launch import LaunchPlan
    from sslcli.inference.embedding import DecodedSet
    from sslcli.runs.loading import TrainedModel

ModelName = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Run folder, checkpoint or encoder folder, backbone name (random weights), or "
        "transformers vision model (folder or hub id) \\[default: the newest run under ./runs].",
        show_default=False,
    ),
]
Size = Annotated[
    int | None,
    typer.Option(
        help="Image side in pixels \\[default: the model's training size].", show_default=False
    ),
]
Space = Annotated[
    str | None,
    typer.Option(
        help="Embeddings after the projection head (projector), the backbone's features "
        "(backbone), or a ViT's patch tokens averaged (patch) \\[default: projector when the "
        "model has one].",
        show_default=False,
    ),
]
BackboneSpace = Annotated[
    str | None,
    typer.Option(
        "--space",
        help="The backbone's features (backbone; a ViT's class token), the representation "
        "used downstream, the embeddings after the projection head (projector), or a ViT's "
        "patch tokens averaged (patch) \\[default: backbone].",
        show_default=False,
    ),
]
Gpus = Annotated[
    int | None,
    typer.Option(
        help="GPUs to shard the images over; 0 = CPU \\[default: 1 if CUDA is present].",
        show_default=False,
    ),
]
OneDevice = Annotated[
    int | None,
    typer.Option(
        "--gpus",
        help="Runs on one device: 1 = one GPU, 0 = the CPU \\[default: 1 if CUDA is present].",
        show_default=False,
    ),
]
CpuProcs = Annotated[int, typer.Option(help="CPU processes with --gpus 0.")]
Threads = Annotated[
    int | None,
    typer.Option(
        help="CPU threads torch computes with \\[default: torch's, about one per core].",
        show_default=False,
    ),
]
ShardThreads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads torch computes with, in each process \\[default: torch's, about one "
        "per core; with --cpu-procs N, the cores shared out among them].",
        show_default=False,
    ),
]
Precision = Annotated[
    str, typer.Option(help="auto, fp32, bf16 or fp16 (auto: bf16 on capable GPUs, fp32 on CPU).")
]
BatchSize = Annotated[int, typer.Option(help="Images per forward pass.")]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        help="Where decoded images are cached \\[default: ~/.cache/sslcli/images].",
        show_default=False,
    ),
]
Strict = Annotated[
    bool, typer.Option(help="Fail on the first unreadable image instead of skipping it.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Write the result to stdout as JSON.")]


def load_model_saying_which(
    name: str | None, size: int | None, quiet: bool, seed: int = 0
) -> TrainedModel:
    """Load ``--model``; a backbone name's random weights are drawn from ``seed``."""
    from sslcli.engine.runtime import seed_everything
    from sslcli.runs.loading import load_model

    seed_everything(seed)
    model = load_model(name, size)
    if not quiet:
        picked = " (the newest run; choose another with --model)" if name is None else ""
        stderr.print(f"model: {model.description}, {model.size} px{picked}", soft_wrap=True)
    return model


def plan_one_device(gpus: int | None, command: str) -> LaunchPlan:
    """The device of a command that computes in one process (``--gpus 0|1``)."""
    if gpus is not None and gpus > 1:
        raise usage_error(f"{command} runs on one device", "use --gpus 1 (or 0 for the CPU)")
    return plan_devices(gpus, 1)


def plan_devices(gpus: int | None, cpu_procs: int) -> LaunchPlan:
    """Where to compute; ``torchrun`` is not needed (nor joined) for inference."""
    import torch

    from sslcli.engine.launch import plan_launch

    return plan_launch(gpus, cpu_procs, torch.cuda.device_count(), {})


def decode(
    inputs: list[Path],
    size: int,
    cache_dir: Path | None,
    strict: bool,
    quiet: bool,
    labelled: bool = False,
) -> DecodedSet:
    """Decode ``inputs``, listing the images skipped (on stderr, also with ``--json``)."""
    from sslcli.data.cache import default_cache_dir
    from sslcli.inference.embedding import decode_inputs

    images = decode_inputs(
        inputs, size, cache_dir or default_cache_dir(), strict, not quiet, labelled
    )
    report_skipped(images.failures)
    return images


def report_skipped(failures: list[SSLError]) -> None:
    if failures:
        stderr.print(f"skipped {len(failures)} image(s) that could not be used:", style="yellow")
        for failure in failures:
            stderr.print(f"  {failure.message}", soft_wrap=True, highlight=False)
