"""The run folder of ``train-siamese`` and ``train-latent``, in one place:

```
RUN/
  config.json          the resolved settings, with the folder format's version (``format``)
  metrics.jsonl        one JSON record per logging step and evaluation (engine.metrics_log)
  checkpoints/
    step-NNNNNNNN/     config.json + model.safetensors + trainer_state.pt (engine.checkpoint)
    latest             the name of the newest step folder
  encoder/             the backbone alone: config.json + model.safetensors, no trainer state
  result.json          written at the end: the last step, whether it was interrupted, metrics
```

Every file is written under a temporary name and renamed (``engine.atomic``). A folder written
by another version of the format is refused with a clear sentence instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from sslcli.engine.atomic import write_text_atomic
from sslcli.engine.checkpoint import CHECKPOINTS_FOLDER, CONFIG_FILE, LATEST_FILE, save_checkpoint
from sslcli.errors import usage_error

RUN_FORMAT = 1
"""The version of this layout and of the configs in it; stored as ``format``."""
FORMAT_KEY = "format"
ENCODER_FOLDER = "encoder"
RESULT_FILE = "result.json"
VIEWS_FILE = "views.png"
"""The first step's views, as the model saw them (written when a run starts)."""


def check_format(config: Mapping[str, Any], where: Path) -> None:
    """Refuse a config written by another version of the run format."""
    found = config.get(FORMAT_KEY)
    if found != RUN_FORMAT:
        written = "an older" if found is None or found < RUN_FORMAT else "a newer"
        raise usage_error(
            f"{where} was written by {written} version of sslcli (run format "
            f"{found if found is not None else 'unversioned'}; this version reads {RUN_FORMAT})",
            "train it again with this version, or use the version of sslcli that wrote it",
        )


def read_checked_config(folder: Path) -> dict[str, Any]:
    """A checkpoint's or run's ``config.json``, refused when another format wrote it."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise usage_error(f"cannot read {folder / CONFIG_FILE}: {error}") from None
    check_format(config, folder)
    return config


def versioned(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the format's version, as every config of a run is written."""
    return {FORMAT_KEY: RUN_FORMAT, **config}


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    write_text_atomic(run_dir / CONFIG_FILE, json.dumps(versioned(config), indent=2))


def write_result(run_dir: Path, result: Mapping[str, Any]) -> None:
    write_text_atomic(run_dir / RESULT_FILE, json.dumps(dict(result), indent=2))


def read_result(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))


def export_encoder(run_dir: Path, backbone: nn.Module, description: Mapping[str, Any]) -> Path:
    """``encoder/``: the backbone alone, a checkpoint folder without trainer state, loadable
    without sslcli (see README); ``description`` says how to rebuild and feed it."""
    return save_checkpoint(run_dir / ENCODER_FOLDER, backbone.state_dict(), versioned(description))


def run_record(model_folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings and the result (``result.json``) of the run that ``model_folder`` (a
    run, one of its checkpoints, or its encoder) belongs to; empty where there is none, or
    the run has not finished. The settings are the newest checkpoint's config (which also
    records the training images), else the run's ``config.json``."""
    run = run_of_checkpoint(model_folder) or model_folder
    if model_folder.name == ENCODER_FOLDER:
        run = model_folder.parent
    latest = run / CHECKPOINTS_FOLDER / LATEST_FILE
    newest = run / CHECKPOINTS_FOLDER / _read(latest).strip() if latest.is_file() else run
    config = _read_json(newest / CONFIG_FILE) or _read_json(run / CONFIG_FILE)
    return config, _read_json(run / RESULT_FILE)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(_read(path))
    except ValueError:
        return {}


def run_of_checkpoint(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint folder belongs to (None for a loose checkpoint)."""
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_FOLDER else None


def newest_run(runs: Path) -> Path:
    """The most recently written run under ``runs`` (by its newest checkpoint or export)."""
    stamps = {}
    for run in runs.iterdir() if runs.is_dir() else ():
        marks = [run / CHECKPOINTS_FOLDER / LATEST_FILE, run / ENCODER_FOLDER / CONFIG_FILE]
        times = [mark.stat().st_mtime for mark in marks if mark.is_file()]
        if times:
            stamps[run] = max(times)
    if not stamps:
        raise usage_error(
            f"no --model given and no trained run under {runs}/",
            "train one with sslcli train-siamese DIR, or pass --model",
        )
    return max(stamps, key=stamps.__getitem__)
