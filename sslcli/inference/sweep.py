"""Several predictions of a latent-variable model: sweep z, see what each z predicts.

For an image x and K latent values (z = 0 first, then K - 1 seeded random directions of one
radius), the predictor gives K predicted target embeddings g(s_x, z_k); each is matched to
the gallery images whose targets it predicts best (lowest E). The default radius is the 90th
percentile of ||z*|| inferred between x and the gallery images: as far as z goes for real
pairs. :func:`write_sweep_sheet` draws a sweep as a contact sheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sslcli.engine.runtime import Runtime
from sslcli.errors import usage_error
from sslcli.runs.loading import TrainedModel

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image

    from sslcli.methods.latent import LatentPredictive


@dataclass
class SweepRow:
    z: torch.Tensor
    gallery: list[int]
    """Indices of the gallery images this z's prediction matches best, best first."""
    energies: list[float]
    """E between the prediction and each of those images' targets."""


@dataclass
class Sweep:
    radius: float
    rows: list[SweepRow]


def sweep_latent(
    model: TrainedModel,
    image: np.ndarray,
    gallery: np.ndarray,
    runtime: Runtime,
    samples: int = 8,
    top: int = 5,
    radius: float | None = None,
    seed: int = 0,
) -> Sweep:
    """Sweep z for one decoded image (1, S, S, 3) against decoded gallery images."""
    from sslcli.inference.energy import embed_with

    require_image_context(model)
    context = embed_with(model, image, runtime, model.encoder("projector"), 256).clone()
    return sweep_context(model, context, gallery, runtime, samples, top, radius, seed)


def require_image_context(model: TrainedModel) -> None:
    """An error unless ``model`` is a latent model that predicts from one image."""
    _latent_of(model)
    if model.continuation is not None and model.continuation.context_frames > 1:
        raise usage_error(
            f"{model.description} predicts from clips of {model.continuation.context_frames} "
            "frames, not from one image",
            "give a video and the moment to sweep after: sweep VIDEO --at 3.2s",
        )


def _latent_of(model: TrainedModel) -> LatentPredictive:
    if model.latent is None:
        raise usage_error(
            f"{model.description} has no latent variable to sweep",
            "give a run of sslcli train-latent",
        )
    return model.latent


def sweep_context(
    model: TrainedModel,
    context: torch.Tensor,
    gallery: np.ndarray,
    runtime: Runtime,
    samples: int = 8,
    top: int = 5,
    radius: float | None = None,
    seed: int = 0,
) -> Sweep:
    """Sweep z for one context s_x (1, D) against decoded gallery images (their targets)."""
    from sslcli.inference.energy import TargetEncoder, embed_with
    from sslcli.inference.finite import check_finite

    latent = _latent_of(model)
    if samples < 1 or top < 1:
        raise usage_error("--samples and --top must be 1 or more")
    top = min(top, len(gallery))
    targets = embed_with(model, gallery, runtime, TargetEncoder(latent), 256).clone()
    if radius is None:
        inferred = latent.infer(context.expand(len(targets), -1), targets)
        radius = float(inferred.z.norm(dim=1).quantile(0.9))
    zs = swept_zs(latent.latent_dim, samples, radius, seed)
    with torch.no_grad():
        predicted = latent.predictor(context.expand(samples, -1), zs).float()
    errors = check_finite(
        (predicted[:, None, :] - targets[None]).pow(2).mean(dim=2), model, "energies"
    )
    return best_matches(errors, zs, top, radius)


def swept_zs(latent_dim: int, samples: int, radius: float, seed: int) -> torch.Tensor:
    """(samples, latent_dim): z = 0, then samples - 1 seeded random directions of norm
    ``radius``."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(samples - 1, latent_dim, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.cat([torch.zeros(1, latent_dim), radius * directions])


def best_matches(errors: torch.Tensor, zs: torch.Tensor, top: int, radius: float) -> Sweep:
    """The sweep whose row k holds the ``top`` gallery items of least ``errors[k]`` (the E
    of z_k's prediction against each gallery item)."""
    best, index = errors.topk(min(top, errors.shape[1]), dim=1, largest=False)
    rows = [
        SweepRow(z, order.tolist(), values.tolist())
        for z, order, values in zip(zs, index, best, strict=True)
    ]
    return Sweep(radius, rows)


THUMBNAIL = 96
"""Side of a picture of the sweep sheet, in pixels."""
GAP = 4


@dataclass(frozen=True)
class SweepSheetLayout:
    """Where each part of the sweep sheet is (boxes: left, top, right, bottom)."""

    size: tuple[int, int]
    title: tuple[int, int, int, int]
    title_lines: list[str]
    row_labels: list[tuple[int, int, int, int]]
    """One per z: "z = 0" or "zK", and ||z||."""
    thumbnails: list[list[tuple[int, int, int, int]]]
    """Per row: x, then its matches."""
    captions: list[list[tuple[int, int, int, int]]]
    """Under each thumbnail: "x" and its name, or a match's E and name."""


def sweep_sheet_layout(rows: int, top: int, title: str = "") -> SweepSheetLayout:
    """The layout of a sheet of ``rows`` latent values with ``top`` matches each, under
    ``title`` (wrapped to the sheet's width)."""
    from sslcli.inference.drawing import PAD, line_height, text_width, wrap

    line = line_height()
    label_width = text_width("||z|| = 00.00") + PAD
    right = PAD + label_width + (top + 1) * (THUMBNAIL + GAP)
    title_lines = wrap(title, right - PAD)
    title_box = (PAD, PAD, right, PAD + max(1, len(title_lines)) * line)
    first_top = title_box[3] + PAD
    row_height = THUMBNAIL + 2 * line + 2 * GAP
    labels, thumbnails, captions = [], [], []
    for row in range(rows):
        y = first_top + row * row_height
        labels.append((PAD, y, PAD + label_width - GAP, y + THUMBNAIL))
        left = PAD + label_width
        xs = [left + column * (THUMBNAIL + GAP) for column in range(top + 1)]
        thumbnails.append([(x, y, x + THUMBNAIL, y + THUMBNAIL) for x in xs])
        below = y + THUMBNAIL + 2
        captions.append([(x, below, x + THUMBNAIL, below + 2 * line) for x in xs])
    width = right + PAD
    height = first_top + rows * row_height + PAD
    return SweepSheetLayout((width, height), title_box, title_lines, labels, thumbnails, captions)


def draw_sweep_sheet(
    x_name: str,
    x_picture: Image.Image,
    sweep: Sweep,
    picture: Callable[[int], Image.Image],
    names: list[str],
) -> tuple[Image.Image, SweepSheetLayout]:
    """A row per latent value: its label (z = 0, z1, ... and ||z||), x's picture, then the
    gallery images its prediction matches best (``picture(index)``, THUMBNAIL px square),
    each with its E and name under it."""
    from PIL import Image

    from sslcli.inference.drawing import BACKGROUND, draw_text, line_height, shorten

    top = max((len(row.gallery) for row in sweep.rows), default=0)
    title = (
        f"latent sweep of {x_name}, radius {sweep.radius:.3f}: a row per z, x then the "
        "gallery images its prediction matches best (lowest E first)"
    )
    layout = sweep_sheet_layout(len(sweep.rows), top, title)
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    line = line_height()
    for k, text in enumerate(layout.title_lines):
        draw_text(sheet, (layout.title[0], layout.title[1] + k * line), text)
    for number, row in enumerate(sweep.rows):
        _, y_top, right, y_bottom = layout.row_labels[number]
        middle = (y_top + y_bottom) // 2
        draw_text(sheet, (right, middle - 1), "z = 0" if number == 0 else f"z{number}", anchor="rd")
        draw_text(sheet, (right, middle + 1), f"||z|| = {float(row.z.norm()):.2f}", anchor="ra")
        captions = ["x", shorten(x_name, THUMBNAIL)]
        pictures = [(x_picture, captions)]
        for index, energy in zip(row.gallery, row.energies, strict=True):
            pictures.append((picture(index), [f"E {energy:.4f}", shorten(names[index], THUMBNAIL)]))
        for column, (shown, texts) in enumerate(pictures):
            sheet.paste(shown, layout.thumbnails[number][column][:2])
            x, y = layout.captions[number][column][:2]
            for k, text in enumerate(texts):
                draw_text(sheet, (x + THUMBNAIL // 2, y + k * line), text, anchor="ma")
    return sheet, layout


def image_thumbnail(path: Path) -> Image.Image:
    """An image file, THUMBNAIL px square (shorter side, centre crop)."""
    from PIL import Image

    from sslcli.data.cache import square_resize
    from sslcli.data.images import load_image

    return Image.fromarray(square_resize(load_image(path, shortest=THUMBNAIL), THUMBNAIL))


def pixels_thumbnail(pixels: np.ndarray) -> Image.Image:
    """A decoded square frame, THUMBNAIL px square (nearest: small frames stay sharp)."""
    from PIL import Image

    return Image.fromarray(np.asarray(pixels)).resize((THUMBNAIL, THUMBNAIL), Image.NEAREST)


def write_sweep_sheet(
    path: Path, image: Path, sweep: Sweep, gallery: list[Path], names: list[str]
) -> SweepSheetLayout:
    """The sheet of an image's sweep against gallery image files (see :func:`write_sheet`)."""
    picture = lambda index: image_thumbnail(gallery[index])  # noqa: E731
    return write_sheet(path, image.name, image_thumbnail(image), sweep, picture, names)


def write_sheet(
    path: Path,
    x_name: str,
    x_picture: Image.Image,
    sweep: Sweep,
    picture: Callable[[int], Image.Image],
    names: list[str],
) -> SweepSheetLayout:
    """:func:`draw_sweep_sheet` written to ``path`` as a PNG (atomically); returns its layout."""
    from sslcli.engine.atomic import atomic_file

    sheet, layout = draw_sweep_sheet(x_name, x_picture, sweep, picture, names)
    with atomic_file(path) as temporary:
        sheet.save(temporary, format="PNG")
    return layout
