"""A matrix as a heatmap PNG (viridis colours, low values dark), without plotting libraries.

The picture: a title; the row labels (left) and column labels (top, written upwards) when the
cells are tall and wide enough for a line of text; the value in each cell when it fits; a
colour bar on the right with the max at its top, the min at its bottom, and what low means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sslcli.engine.atomic import atomic_file
from sslcli.inference.drawing import (
    BACKGROUND,
    PAD,
    draw_text,
    draw_vertical_text,
    ink_on,
    line_height,
    shorten,
    text_width,
)

_VIRIDIS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)
MAX_SIDE = 1024
"""Largest side of the matrix's cells together: cells are scaled up to it, never below one
pixel, and never above ``MAX_CELL``."""
MAX_CELL = 64
LABEL_WIDTH = 120
"""Longest label, in pixels: longer names keep their end, after "…"."""
BAR_WIDTH = 18
BAR_MIN_HEIGHT = 120
VALUE_FORMAT = "{:.3f}"


def colour(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGB uint8 of each value on the viridis scale from ``low`` to ``high``."""
    span = high - low if high > low else 1.0
    position = np.clip((values - low) / span, 0, 1) * (len(_VIRIDIS) - 1)
    below = np.floor(position).astype(int).clip(0, len(_VIRIDIS) - 2)
    share = (position - below)[..., None]
    rgb = _VIRIDIS[below] * (1 - share) + _VIRIDIS[below + 1] * share
    return np.rint(rgb).astype(np.uint8)


Box = tuple[int, int, int, int]
"""left, top, right, bottom (right and bottom excluded), in pixels."""


@dataclass(frozen=True)
class HeatmapLayout:
    """Where each part of the picture is."""

    size: tuple[int, int]
    cell: int
    """Side of one cell in pixels."""
    title: Box
    matrix: Box
    row_labels: Box | None
    """None when the cells are too small for a line of text (too many rows)."""
    column_labels: Box | None
    values_shown: bool
    colour_bar: Box
    """The gradient alone: its top row is the max's colour, its bottom row the min's."""


def heatmap_layout(
    rows: int,
    columns: int,
    row_names: Sequence[str] | None = None,
    column_names: Sequence[str] | None = None,
    value_texts: Sequence[str] = (),
    scale_texts: Sequence[str] = (),
    title: str = "",
) -> HeatmapLayout:
    """The layout of a ``rows`` x ``columns`` heatmap with these labels and texts."""
    cell = max(1, min(MAX_CELL, MAX_SIDE // max(rows, columns)))
    line = line_height()
    labelled = cell >= line
    row_width = _longest(row_names) if labelled and row_names else 0
    column_height = _longest(column_names) if labelled and column_names else 0
    values = bool(value_texts) and cell >= line + 2 and cell >= _longest(value_texts) + 4
    title_height = line + PAD
    left = PAD + (row_width + PAD if row_width else 0)
    top = PAD + title_height + (column_height + PAD if column_height else 0)
    matrix = (left, top, left + columns * cell, top + rows * cell)
    bar_left = matrix[2] + 2 * PAD
    bar = (bar_left, top, bar_left + BAR_WIDTH, top + max(rows * cell, BAR_MIN_HEIGHT))
    scale_width = max((text_width(text) for text in scale_texts), default=0)
    width = max(bar[2] + PAD + scale_width + PAD, PAD + text_width(title) + PAD)
    height = max(bar[3], matrix[3]) + PAD
    return HeatmapLayout(
        size=(width, height),
        cell=cell,
        title=(PAD, PAD, width - PAD, PAD + line),
        matrix=matrix,
        row_labels=(PAD, top, left - PAD, matrix[3]) if row_width else None,
        column_labels=(left, top - PAD - column_height, matrix[2], top - PAD)
        if column_height
        else None,
        values_shown=values,
        colour_bar=bar,
    )


def _longest(texts: Sequence[str]) -> int:
    return max(text_width(shorten(text, LABEL_WIDTH)) for text in texts)


def draw_heatmap(
    matrix: np.ndarray,
    row_names: Sequence[str] | None = None,
    column_names: Sequence[str] | None = None,
    title: str = "",
    low_means: str = "",
) -> tuple[Image.Image, HeatmapLayout]:
    """Row i of the cells is row i of ``matrix``; the colour scale spans its min to max.
    ``low_means`` is written under the colour bar's min ("low = compatible")."""
    rows, columns = matrix.shape
    low, high = float(matrix.min()), float(matrix.max())
    values = [VALUE_FORMAT.format(v) for v in (low, high)] if matrix.size else []
    scale = [f"max {VALUE_FORMAT.format(high)}", f"min {VALUE_FORMAT.format(low)}"]
    scale += [f"low = {low_means}"] if low_means else []
    layout = heatmap_layout(rows, columns, row_names, column_names, values, scale, title)
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    cells = colour(matrix, low, high)
    left, top, right, bottom = layout.matrix
    picture = Image.fromarray(cells).resize((right - left, bottom - top), Image.Resampling.NEAREST)
    canvas.paste(picture, (left, top))
    draw_text(canvas, layout.title[:2], title)
    cell, half = layout.cell, layout.cell // 2
    if layout.row_labels is not None:
        for i, name in enumerate(row_names or []):
            label = shorten(name, LABEL_WIDTH)
            draw_text(canvas, (left - PAD, top + i * cell + half), label, anchor="rm")
    if layout.column_labels is not None:
        height = line_height()
        for j, name in enumerate(column_names or []):
            label = shorten(name, LABEL_WIDTH)
            corner = (left + j * cell + half - height // 2, top - PAD)
            draw_vertical_text(canvas, corner, label)
    if layout.values_shown:
        for i in range(rows):
            for j in range(columns):
                centre = (left + j * cell + half, top + i * cell + half)
                ink = ink_on(tuple(int(c) for c in cells[i, j]))
                draw_text(canvas, centre, VALUE_FORMAT.format(matrix[i, j]), ink, anchor="mm")
    _draw_bar(canvas, layout.colour_bar, low, high, scale)
    return canvas, layout


def _draw_bar(canvas: Image.Image, box: Box, low: float, high: float, scale: Sequence[str]) -> None:
    left, top, right, bottom = box
    steps = np.linspace(high, low, bottom - top)
    gradient = np.repeat(colour(steps, low, high)[:, None, :], right - left, axis=1)
    canvas.paste(Image.fromarray(gradient), (left, top))
    ImageDraw.Draw(canvas).rectangle((left - 1, top - 1, right, bottom), outline=(120, 120, 120))
    text_left = right + PAD
    draw_text(canvas, (text_left, top), scale[0])
    draw_text(canvas, (text_left, bottom), scale[1], anchor="ld")
    for k, text in enumerate(scale[2:]):
        draw_text(canvas, (text_left, bottom - (k + 1) * line_height() - 2), text, anchor="ld")


def write_heatmap(
    path: Path,
    matrix: np.ndarray,
    row_names: Sequence[str] | None = None,
    column_names: Sequence[str] | None = None,
    title: str = "",
    low_means: str = "",
) -> HeatmapLayout:
    """:func:`draw_heatmap` written to ``path`` as a PNG (atomically); returns its layout."""
    canvas, layout = draw_heatmap(matrix, row_names, column_names, title, low_means)
    with atomic_file(path) as temporary:
        canvas.save(temporary, format="PNG")
    return layout
