"""A matrix as a heatmap PNG (viridis colours, low values dark), without plotting libraries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sslcli.engine.atomic import atomic_file

_VIRIDIS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)
MAX_SIDE = 1024
"""Largest side of the picture: cells are scaled up to it, never below one pixel."""


def colour(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGB uint8 of each value on the viridis scale from ``low`` to ``high``."""
    span = high - low if high > low else 1.0
    position = np.clip((values - low) / span, 0, 1) * (len(_VIRIDIS) - 1)
    below = np.floor(position).astype(int).clip(0, len(_VIRIDIS) - 2)
    share = (position - below)[..., None]
    rgb = _VIRIDIS[below] * (1 - share) + _VIRIDIS[below + 1] * share
    return np.rint(rgb).astype(np.uint8)


def write_heatmap(path: Path, matrix: np.ndarray) -> None:
    """Row i of the picture is row i of ``matrix``; the colour scale spans its min to max."""
    rows, columns = matrix.shape
    cell = max(1, MAX_SIDE // max(rows, columns))
    pixels = colour(matrix, float(matrix.min()), float(matrix.max()))
    picture = Image.fromarray(pixels).resize(
        (columns * cell, rows * cell), Image.Resampling.NEAREST
    )
    with atomic_file(path) as temporary:
        picture.save(temporary, format="PNG")
