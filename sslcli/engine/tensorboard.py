"""A run's records mirrored into TensorBoard event files (``--tensorboard``), under
``RUN/tensorboard/``: every metric of ``metrics.jsonl`` as a scalar at its step (grouped as
``train/``, ``eval/``, ``collapse/`` and ``plan/``), pictures (the first step's views, an
embedding map), and the evaluation images' embeddings for TensorBoard's projector.

``metrics.jsonl`` stays the record a run is judged by; the event files are a view of it. A
resumed run drops the events after its checkpoint's step (``purge_step``), as it drops
those records, so the curves read like those of an uninterrupted run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslcli.errors import usage_error

TENSORBOARD_FOLDER = "tensorboard"
GROUPS = {
    "eval": ("knn_", "probe_"),
    "collapse": ("embedding_std", "effective_rank", "teacher_entropy"),
    "plan": ("planned_steps", "step_seconds", "checkpoint_seconds", "evaluation_seconds"),
}
"""Metric names (or their starts) shown under each group; the others go under ``train/``."""
NOT_SCALARS = ("step", "epoch")


def require_tensorboard() -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise usage_error(
            "--tensorboard needs the tensorboard package", "pip install 'sslcli[tensorboard]'"
        )


def tag(name: str) -> str:
    """The group/name a metric is shown under."""
    for group, starts in GROUPS.items():
        if name.startswith(starts):
            return f"{group}/{name}"
    return f"train/{name}"


class TensorBoardLog:
    """Event files of one process (the main one) of a run."""

    def __init__(self, run_dir: Path, resumed_at: int | None = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resumed_at is None else resumed_at + 1
        self.folder = run_dir / TENSORBOARD_FOLDER
        self.writer = SummaryWriter(str(self.folder), purge_step=purge)

    def append(self, record: Mapping[str, Any]) -> None:
        """A ``metrics.jsonl`` record: its numbers as scalars at its step."""
        step = int(record["step"])
        for name, value in record.items():
            if name not in NOT_SCALARS and isinstance(value, (int, float)):
                self.writer.add_scalar(tag(name), float(value), step)
        self.writer.flush()

    def image(self, name: str, picture: Path, step: int = 0) -> None:
        """A PNG (views, a map) as an image."""
        from PIL import Image

        with Image.open(picture) as opened:
            pixels = np.asarray(opened.convert("RGB"))
        self.writer.add_image(name, pixels, step, dataformats="HWC")
        self.writer.flush()

    def embeddings(
        self,
        features: torch.Tensor,
        labels: Sequence[str],
        pixels: np.ndarray,
        step: int,
        name: str = "eval",
    ) -> None:
        """Embeddings for the projector, labelled, each with its image as a thumbnail."""
        images = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255
        self.writer.add_embedding(
            features, metadata=list(labels), label_img=images, global_step=step, tag=name
        )
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
