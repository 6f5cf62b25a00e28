"""Checkpoints: folders of ``config.json`` + ``model.safetensors`` (+ ``trainer_state.pt``).

A run keeps its checkpoints under ``RUN/checkpoints/step-NNNNNNNN/`` and names the newest in
``RUN/checkpoints/latest``. Each checkpoint folder is written under a temporary name and
renamed, and ``latest`` is replaced atomically after it, so a kill at any moment leaves the
previous checkpoint valid and pointed to. Trainer state is read with ``weights_only=True``:
loading a checkpoint never runs code from it.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from sslcli.engine.atomic import atomic_folder, write_text_atomic
from sslcli.errors import SSLError, usage_error

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
CHECKPOINTS_FOLDER = "checkpoints"
LATEST_FILE = "latest"


@dataclass
class Checkpoint:
    path: Path
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    trainer_state: dict[str, Any] | None


def save_checkpoint(
    folder: Path,
    weights: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    trainer_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write one checkpoint folder atomically and return its path.

    Both files are serialised in memory and written with plain file writes, so a full disk
    is an ``OSError`` (ENOSPC) rather than each library's own error.
    """
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in weights.items()}
    with atomic_folder(folder) as temporary:
        (temporary / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        (temporary / WEIGHTS_FILE).write_bytes(save(tensors))
        if trainer_state is not None:
            state = io.BytesIO()
            torch.save(dict(trainer_state), state)
            (temporary / STATE_FILE).write_bytes(state.getbuffer())
    return folder


def load_checkpoint(
    folder: Path, device: str | torch.device = "cpu", trainer_state: bool = True
) -> Checkpoint:
    """Read a checkpoint folder (its trainer state only with ``trainer_state``: inference
    needs the weights alone); one clear sentence naming the file that is missing or damaged."""
    if not folder.is_dir():
        raise usage_error(f"no checkpoint at {folder}", "give a run folder or a checkpoint folder")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise usage_error(
            f"{folder} is not a checkpoint: {', '.join(missing)} missing",
            "a checkpoint folder holds config.json and model.safetensors",
        )
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise damaged(folder / CONFIG_FILE, error) from None
    weights = read_weights(folder / WEIGHTS_FILE, device)
    state_path = folder / STATE_FILE
    state = (
        read_trainer_state(state_path, device) if trainer_state and state_path.is_file() else None
    )
    return Checkpoint(folder, config, weights, state)


def read_weights(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise damaged(path, error) from None


def read_trainer_state(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Tensors and plain values only (``weights_only``): loading never runs code from it."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise usage_error(
            f"{path} holds non-tensor objects; refusing to load it (that could run code)",
            "use a checkpoint written by sslcli",
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise damaged(path, error) from None


def damaged(path: Path, error: Exception) -> SSLError:
    """The error for a file that exists but cannot be read: truncated, edited, corrupt."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return usage_error(
        f"{path} is damaged or incomplete ({reason[:120]})",
        "restore it from a copy, or use another checkpoint of the run (checkpoints/step-*)",
    )


def step_folder(run: Path, step: int) -> Path:
    return run / CHECKPOINTS_FOLDER / f"step-{step:08d}"


def save_run_checkpoint(
    run: Path,
    step: int,
    weights: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    trainer_state: Mapping[str, Any],
    keep: int = 2,
) -> Path:
    """Save ``step``'s checkpoint in a run, point ``latest`` at it, keep the newest ``keep``."""
    folder = save_checkpoint(step_folder(run, step), weights, config, trainer_state)
    write_text_atomic(run / CHECKPOINTS_FOLDER / LATEST_FILE, folder.name + "\n")
    # Folders of later steps belong to a timeline this run has left (it resumed from an
    # earlier checkpoint); temporaries are what a kill left half-written.
    later = [f for f in (run / CHECKPOINTS_FOLDER).glob("step-*") if f.name > folder.name]
    earlier = sorted(f for f in (run / CHECKPOINTS_FOLDER).glob("step-*") if f.name < folder.name)
    leftovers = list((run / CHECKPOINTS_FOLDER).glob(".step-*.tmp-*"))
    for stale in later + earlier[: max(0, len(earlier) - (keep - 1))] + leftovers:
        shutil.rmtree(stale, ignore_errors=True)
    return folder


def resolve_resume(path: Path) -> Path:
    """The checkpoint folder that ``--resume PATH`` means: a checkpoint, or a run's latest."""
    latest = path / CHECKPOINTS_FOLDER / LATEST_FILE
    if latest.is_file():
        return path / CHECKPOINTS_FOLDER / latest.read_text(encoding="utf-8").strip()
    if (path / STATE_FILE).is_file():
        return path  # a checkpoint folder (load_checkpoint says what it lacks, if anything)
    if (path / WEIGHTS_FILE).is_file():
        raise usage_error(
            f"{path} is not a training checkpoint (it holds no trainer state)",
            "give the run folder or one of its checkpoints/step-* folders",
        )
    if not path.exists():
        raise usage_error(f"cannot resume: {path} does not exist")
    raise usage_error(
        f"cannot resume: no checkpoint in {path}",
        "give a run folder (with checkpoints/latest) or a checkpoint folder",
    )


def check_compatible(
    saved: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str]
) -> None:
    """Refuse to resume when settings that shape the model or the data differ."""
    differences = [
        f"{key}: checkpoint has {saved.get(key)!r}, this run has {current.get(key)!r}"
        for key in keys
        if saved.get(key) != current.get(key)
    ]
    if differences:
        raise usage_error(
            "cannot resume from a mismatched checkpoint: " + "; ".join(differences),
            "use the checkpoint's settings, or start a new run without --resume",
        )
