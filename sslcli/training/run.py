"""A training run from start to end: settings resolved, run folder claimed and written,
processes launched (one, ``--gpus N``, ``--cpu-procs N`` or torchrun's), result read back."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sslcli.errors import usage_error
from sslcli.training.config import AUTO_BATCH, LATENT_METHODS, TrainingConfig, TrainingRequest


@dataclass(frozen=True)
class Devices:
    """Where the run's processes go: ``--gpus`` (None: one GPU if CUDA is present, else the
    CPU) and ``--cpu-procs`` (gloo processes with ``gpus=0``)."""

    gpus: int | None
    cpu_procs: int
    threads: int | None = None
    """CPU threads each process computes with (None: torch's default, the cores shared out
    among the processes)."""


@dataclass(frozen=True)
class Start:
    """What a run starts with, for the caller to announce before the processes launch."""

    config: TrainingConfig
    device_type: str
    run_dir: Path
    checkpoint: Path | None
    """The checkpoint resumed from (None: a new run)."""
    changed: dict[str, tuple[Any, Any]]
    """Schedule settings a resumed run changes: name -> (the run's, the new)."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended (only in the main process)."""

    run_dir: Path
    encoder: Path
    result: dict[str, Any]
    """``result.json``: the last step, whether it was interrupted, the last metrics."""


def run_training(
    kind: str,
    request: TrainingRequest,
    devices: Devices,
    out: Path | None,
    resume: Path | None,
    announce: Callable[[Start], None] = lambda start: None,
) -> Outcome | None:
    """Train in every process; the :class:`Outcome` in the main process, None in the others
    (under torchrun). ``kind`` names the run folder by default (``runs/KIND-TIME``). A time
    budget counts from here."""
    started = time.time()
    import torch

    from sslcli.engine.checkpoint import CHECKPOINTS_FOLDER, resolve_resume
    from sslcli.engine.launch import launch, plan_launch
    from sslcli.engine.run_lock import run_folder_lock
    from sslcli.engine.runtime import check_threads
    from sslcli.runs.layout import (
        ENCODER_FOLDER,
        read_checked_config,
        read_result,
        run_of_checkpoint,
        write_config,
    )
    from sslcli.training.config import continued, replanned, resolve_config
    from sslcli.training.worker import train_worker

    check_threads(devices.threads)
    plan = plan_launch(devices.gpus, devices.cpu_procs, torch.cuda.device_count(), os.environ)
    main_process = os.environ.get("RANK", "0") == "0"
    checkpoint = resolve_resume(resume) if resume is not None else None
    changed: dict[str, tuple[Any, Any]] = {}
    if checkpoint is not None:
        saved = read_checked_config(checkpoint)
        _check_kind(kind, saved, resume)
        request = continued(request, saved)
        changed = replanned(request, saved)
        out = out or run_of_checkpoint(checkpoint)
    elif request.init is not None:
        request = _from_encoder(request)
    config = resolve_config(request, plan.processes)
    if config.batch_size == AUTO_BATCH and plan.device_type != "cuda":
        raise usage_error(
            "--batch-size auto measures the largest batch that fits in GPU memory, and this "
            "run has no GPU",
            "give a number, e.g. --batch-size 256",
        )
    run_dir = out or Path("runs") / time.strftime(f"{kind}-%Y%m%d-%H%M%S")
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
            write_config(run_dir, config.as_dict())
            announce(Start(config, plan.device_type, run_dir, checkpoint, changed))
        launch(
            plan,
            config.precision,
            config.seed,
            train_worker,
            config,
            run_dir,
            checkpoint,
            devices.threads,
            None if config.time_budget is None else started + config.time_budget,
        )
    if not main_process:
        return None
    return Outcome(run_dir, run_dir / ENCODER_FOLDER, read_result(run_dir))


def _check_kind(kind: str, saved: dict[str, Any], resume: Path | None) -> None:
    """A latent run resumes with train-latent, a joint-embedding one with train-siamese."""
    saved_kind = "latent" if saved["method"] in LATENT_METHODS else "siamese"
    if saved_kind != kind:
        raise usage_error(
            f"{resume} is a train-{saved_kind} run",
            f"continue it with sslcli train-{saved_kind} --resume {resume}",
        )


def _from_encoder(request: TrainingRequest) -> TrainingRequest:
    """``--init``: the backbone (and its stem) of the trained encoder, unless given."""
    from sslcli.runs.loading import load_model

    trained = load_model(request.init)
    if trained.backbone_name is None:
        raise usage_error(
            f"--init {request.init} is not an encoder trained by sslcli",
            "give a run folder, one of its checkpoints, or its encoder/ folder",
        )
    taken = {
        "backbone": trained.backbone_name,
        "small_images": trained.small,
        "patch_size": trained.patch_size,
    }
    if trained.patch_size is not None:  # a ViT's position embeddings are made for its size
        taken["size"] = trained.size
    for name, value in taken.items():
        if name in request.explicit and getattr(request, name) != value:
            flag = "--" + name.replace("_", "-")
            raise usage_error(
                f"{flag} {getattr(request, name)} does not fit --init {request.init} "
                f"({name} {value})",
                f"leave out {flag}: the run takes the encoder's",
            )
    return replace(request, **taken)
