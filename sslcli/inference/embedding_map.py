"""A map of embeddings: each image a point in 2-D, drawn as a PNG with PIL alone.

The embeddings are projected to two dimensions by UMAP when ``umap-learn`` is installed, by
PCA otherwise (or as asked). The picture: a title; the points, coloured by class when the
images have classes, with a legend of class names and colour swatches; and the thumbnails of a
few points spread over the map (farthest-point sampling), each at its point, in a thin border
of its point's colour.
"""

from __future__ import annotations

import colorsys
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from sslcli.engine.atomic import atomic_file
from sslcli.errors import usage_error
from sslcli.inference.drawing import (
    BACKGROUND,
    PAD,
    draw_text,
    line_height,
    shorten,
    text_width,
    wrap,
)

METHODS = ("auto", "pca", "umap")
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
"""The classes' colours (matplotlib's tab10); more classes get hues spread round the wheel."""
PLOT = 640
"""Longer side of the frame the points are drawn in, in pixels; the shorter side follows the
points' extent (both axes at one scale), down to a third of it."""
THUMBNAIL = 40
INSET = THUMBNAIL // 2 + PAD
"""How far the points keep from the frame: a thumbnail centred on any of them stays inside."""
THUMBNAILS = 16
"""Most thumbnails on a map."""
POINT_RADIUS = 3
LABEL_WIDTH = 120
"""Longest class name in the legend, in pixels: longer names keep their end, after "…"."""
FRAME = (200, 200, 200)

Box = tuple[int, int, int, int]
"""left, top, right, bottom (right and bottom excluded), in pixels."""


@dataclass(frozen=True)
class Projection:
    """The embeddings in two dimensions."""

    points: np.ndarray
    """(N, 2) float64, one row per image."""
    method: str
    """``pca`` or ``umap``."""
    explained_variance: float | None = None
    """PCA: the share of the embeddings' variance the two components explain."""

    def summary(self) -> str:
        if self.explained_variance is None:
            return self.method.upper()
        share = 100 * self.explained_variance
        return f"PCA, the 2 components explain {share:.1f}% of the variance"


def choose_method(requested: str) -> str:
    """``pca`` or ``umap`` for ``--map-method`` ``requested`` (auto: UMAP when installed)."""
    if requested not in METHODS:
        raise usage_error(f"--map-method must be auto, pca or umap, got {requested}")
    installed = importlib.util.find_spec("umap") is not None
    if requested == "umap" and not installed:
        raise usage_error(
            "--map-method umap needs the umap-learn package, which is not installed",
            "pip install umap-learn, or use --map-method pca",
        )
    if requested == "auto":
        return "umap" if installed else "pca"
    return requested


def project(embeddings: torch.Tensor, method: str) -> Projection:
    """``embeddings`` (N, D) in two dimensions by ``method`` (``pca`` or ``umap``)."""
    if method == "umap":
        import umap

        reducer = umap.UMAP(
            n_components=2, n_neighbors=min(15, len(embeddings) - 1), random_state=0
        )
        return Projection(reducer.fit_transform(embeddings.numpy()).astype(np.float64), "umap")
    return pca(embeddings)


def pca(embeddings: torch.Tensor) -> Projection:
    """The embeddings on their two principal components, and the share of variance these
    explain. The components are the covariance's top eigenvectors (the centred embeddings'
    right singular vectors), each signed so that its largest-magnitude loading is positive:
    the same embeddings always give the same map."""
    data = embeddings.float()
    centred = data - data.mean(dim=0)
    covariance = (centred.T @ centred).double()
    variances, vectors = torch.linalg.eigh(covariance)  # ascending
    components = vectors[:, -2:].flip(1)
    largest = components.abs().argmax(dim=0)
    components = components * components[largest, torch.arange(2)].sign()
    variances = variances.clamp(min=0)  # rounding can leave the smallest a little below 0
    total = float(variances.sum())
    # embeddings all alike (a collapsed model): the single point they map to loses nothing
    explained = float(variances[-2:].sum()) / total if total > 0 else 1.0
    points = (centred @ components.float()).double().numpy()
    return Projection(points, "pca", explained)


def spread_points(points: np.ndarray, count: int) -> list[int]:
    """Up to ``count`` indices of ``points`` spread over them (farthest-point sampling): first
    the point farthest from their mean, then each time the one farthest from those chosen.
    Never two at the same place; ties go to the lower index."""
    chosen = [int(np.linalg.norm(points - points.mean(axis=0), axis=1).argmax())]
    distances = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < min(count, len(points)) and distances.max() > 0:
        chosen.append(int(distances.argmax()))
        distances = np.minimum(distances, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen


def class_colours(count: int) -> list[tuple[int, int, int]]:
    """A distinct colour for each of ``count`` classes."""
    if count <= len(PALETTE):
        return list(PALETTE[:count])
    hues = (colorsys.hsv_to_rgb(k / count, 0.75, 0.85) for k in range(count))
    return [(round(255 * r), round(255 * g), round(255 * b)) for r, g, b in hues]


@dataclass(frozen=True)
class MapLayout:
    """Where each part of the picture is."""

    size: tuple[int, int]
    title: Box
    title_lines: list[str]
    plot: Box
    legend: list[tuple[str, Box]]
    """Each class and its colour swatch, top to bottom (empty without classes)."""


def plot_size(points: np.ndarray) -> tuple[int, int]:
    """Width and height of the frame of ``points`` (N, 2): the longer side ``PLOT``."""
    span = points.max(axis=0) - points.min(axis=0)
    share = span / span.max() if span.max() > 0 else np.ones(2)
    width, height = (max(PLOT // 3, round((PLOT - 2 * INSET) * s) + 2 * INSET) for s in share)
    return width, height


def map_layout(title: str, classes: Sequence[str], plot: tuple[int, int]) -> MapLayout:
    """The layout of a map under ``title`` (wrapped to the map's width), its frame ``plot``
    (width, height), with a legend of ``classes`` on the right."""
    line = line_height()
    swatch = line - 2
    names = [shorten(name, LABEL_WIDTH) for name in classes]
    legend_width = swatch + PAD + max(map(text_width, names)) if names else 0
    width = PAD + plot[0] + (2 * PAD + legend_width if names else 0) + PAD
    title_lines = wrap(title, width - 2 * PAD)
    title_box = (PAD, PAD, width - PAD, PAD + max(1, len(title_lines)) * line)
    top = title_box[3] + PAD
    frame = (PAD, top, PAD + plot[0], top + plot[1])
    left = frame[2] + 2 * PAD
    legend = [
        (name, (left, top + k * line, left + swatch, top + k * line + swatch))
        for k, name in enumerate(names)
    ]
    height = max(frame[3], top + len(names) * line) + PAD
    return MapLayout((width, height), title_box, title_lines, frame, legend)


def _positions(points: np.ndarray, box: Box) -> np.ndarray:
    """Pixel centres (N, 2) of ``points`` in ``box``, ``INSET`` from its sides, both axes at
    one scale (y up), centred."""
    left, top, right, bottom = box
    room = np.array([right - left, bottom - top]) - 2 * INSET
    low = points.min(axis=0)
    span = points.max(axis=0) - low
    with np.errstate(divide="ignore"):  # an axis without extent leaves the other the scale
        scale = float(np.min(room / span)) if span.max() > 0 else 0.0
    offset = (room - span * scale) / 2
    x = left + INSET + offset[0] + (points[:, 0] - low[0]) * scale
    y = bottom - INSET - offset[1] - (points[:, 1] - low[1]) * scale
    return np.rint(np.stack([x, y], axis=1)).astype(int)


def draw_embedding_map(
    projection: Projection, pixels: np.ndarray, labels: Sequence[str] | None, subject: str
) -> tuple[Image.Image, MapLayout]:
    """The map of ``projection``, titled ``subject: how it was projected``; ``pixels``
    (N, S, S, 3) uint8 are the images, ``labels`` their classes (None: one colour)."""
    classes = sorted(set(labels)) if labels is not None else []
    title = f"{subject}: {projection.summary()}"
    layout = map_layout(title, classes, plot_size(projection.points))
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    line = line_height()
    for k, text in enumerate(layout.title_lines):
        draw_text(canvas, (layout.title[0], layout.title[1] + k * line), text)
    left, top, right, bottom = layout.plot
    draw.rectangle((left, top, right - 1, bottom - 1), outline=FRAME)
    colours = class_colours(len(classes))
    index = {name: k for k, name in enumerate(classes)}
    fills = (
        [colours[index[label]] for label in labels]
        if labels is not None
        else [PALETTE[0]] * len(projection.points)
    )
    centres = _positions(projection.points, layout.plot)
    r = POINT_RADIUS
    for (x, y), fill in zip(centres.tolist(), fills, strict=True):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    half = THUMBNAIL // 2
    for k in spread_points(projection.points, THUMBNAILS):
        x, y = centres[k].tolist()
        picture = Image.fromarray(np.asarray(pixels[k])).resize((THUMBNAIL, THUMBNAIL))
        canvas.paste(picture, (x - half, y - half))
        draw.rectangle((x - half - 1, y - half - 1, x + half, y + half), outline=fills[k])
    for (name, box), fill in zip(layout.legend, colours, strict=True):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=fill)
        draw_text(canvas, (box[2] + PAD, (box[1] + box[3]) // 2), name, anchor="lm")
    return canvas, layout


def write_embedding_map(
    path: Path,
    projection: Projection,
    pixels: np.ndarray,
    labels: Sequence[str] | None,
    subject: str,
) -> MapLayout:
    """:func:`draw_embedding_map` written to ``path`` as a PNG (atomically); returns its
    layout."""
    canvas, layout = draw_embedding_map(projection, pixels, labels, subject)
    with atomic_file(path) as temporary:
        canvas.save(temporary, format="PNG")
    return layout
