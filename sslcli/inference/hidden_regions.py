"""Hidden parts of a picture under a masked-latent run: how predictable each part is from the
rest (``energy IMAGE --mask-grid N``), and the several completions z gives one hidden region
(``sweep IMAGE --mask x0,y0,x1,y1``).

The patch grid of a masked-latent run's ViT is cut into N x N cells (rows and columns split
as evenly as they go); for each cell, F = min_z E + lambda R(z) of predicting its patches'
target representations from all the other patches (``MaskedLatent.hidden_region``). A low F
is a part the rest foretells (background, the continuation of a stroke); a high one, a part
it does not. The map draws F over the picture itself.

The sweep hides the patches whose centres lie in a box, and for z = 0 and K - 1 random z of
one radius predicts their target representations; each prediction is matched to the same
region of the gallery images (lowest mean squared error first). How far apart the
predictions are is set against how far apart the gallery's regions are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from sslcli.errors import usage_error
from sslcli.methods.latent import squared_error

if TYPE_CHECKING:
    from sslcli.engine.runtime import Runtime
    from sslcli.inference.sweep import Sweep
    from sslcli.methods.masked_latent import MaskedLatent

OVERLAY_ALPHA = 0.45
"""How much of the colour of a cell covers the picture on the map."""


@dataclass(frozen=True)
class GridEnergies:
    free_energy: np.ndarray
    """(N, N): F of each cell, row by row from the top left."""
    energy_at_zero: np.ndarray
    """(N, N): E(z = 0) of each cell; the z-gap is energy_at_zero - free_energy."""


def grid_cells(rows: int, columns: int, cells: int) -> list[torch.Tensor]:
    """The patch indices (row-major on a rows x columns grid) of each of cells x cells
    cells (at least 2 x 2), row by row; the grid's rows and columns split as evenly as they
    go."""
    largest = min(rows, columns)
    if not 2 <= cells <= largest:
        raise usage_error(
            f"--mask-grid {cells} does not fit the model's {rows} x {columns} patch grid "
            "(each cell hides at least one patch, and the rest must be seen)",
            f"give --mask-grid between 2 and {largest}"
            if largest >= 2
            else "the model's grid is too small to hide a part",
        )
    grid = np.arange(rows * columns).reshape(rows, columns)
    return [
        torch.from_numpy(block.flatten().copy())
        for band in np.array_split(grid, cells, axis=0)
        for block in np.array_split(band, cells, axis=1)
    ]


def grid_energies(
    model: MaskedLatent, pixels: torch.Tensor, cells: int, runtime: Runtime
) -> GridEnergies:
    """F and E(z = 0) of each of the cells x cells cells of one standardised image
    (3, size, size), each cell hidden in turn and predicted from all the others."""
    from sslcli.models.tokens import patch_grid

    images = pixels.unsqueeze(0).to(runtime.device)
    rows, columns = patch_grid(model.backbone, *images.shape[-2:])
    free, at_zero = [], []
    with runtime.autocast():
        for hidden in grid_cells(rows, columns, cells):
            inferred = model.hidden_region(images, hidden)
            free.append(float(inferred.free_energy[0]))
            at_zero.append(float(inferred.energy_at_zero[0]))
    return GridEnergies(
        np.array(free).reshape(cells, cells), np.array(at_zero).reshape(cells, cells)
    )


def write_grid_map(path: Path, picture: np.ndarray, energies: np.ndarray, title: str) -> None:
    """The heatmap of ``energies`` (N, N) with the (H, W, 3) uint8 ``picture`` seen through
    its cells, as a PNG (atomically)."""
    from sslcli.engine.atomic import atomic_file
    from sslcli.inference.heatmap import draw_heatmap

    count = len(energies)
    names = [str(i) for i in range(count)]
    canvas, layout = draw_heatmap(energies, names, names, title, "predictable")
    left, top, right, bottom = layout.matrix
    box = (right - left, bottom - top)
    cells = canvas.crop(layout.matrix)
    photo = Image.fromarray(picture).convert("RGB").resize(box, Image.Resampling.BILINEAR)
    canvas.paste(Image.blend(photo, cells, OVERLAY_ALPHA), (left, top))
    with atomic_file(path) as temporary:
        canvas.save(temporary, format="PNG")


@dataclass(frozen=True)
class HiddenSweep:
    sweep: Sweep
    hidden: torch.Tensor
    """The hidden patches (row-major on the patch grid)."""
    prediction_spread: float
    """The mean squared distance between the predictions of two different z."""
    gallery_spread: float
    """The same between the hidden region's targets of two different gallery images."""
    unit_radius: bool = False
    """Whether the default radius fell back to 1: z* was 0 for 90% of the gallery."""


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``--mask x0,y0,x1,y1``: fractions of the (square) picture the model sees, 0 0 the top
    left, x0 < x1 and y0 < y1."""
    hint = "e.g. --mask 0,0.5,1,1 hides the lower half"
    try:
        x0, y0, x1, y1 = (float(part) for part in text.split(","))
    except ValueError:
        raise usage_error(f"--mask takes four fractions x0,y0,x1,y1, got {text!r}", hint) from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise usage_error(
            f"--mask {text} is not a box inside the picture (0 <= x0 < x1 <= 1, same for y)",
            hint,
        )
    return x0, y0, x1, y1


def box_patches(box: tuple[float, float, float, float], rows: int, columns: int) -> torch.Tensor:
    """The patches (row-major) whose centres lie inside ``box``; some, never all of them."""
    x0, y0, x1, y1 = box
    ys = (torch.arange(rows) + 0.5) / rows
    xs = (torch.arange(columns) + 0.5) / columns
    inside = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    hidden = torch.nonzero(inside.flatten()).flatten()
    if len(hidden) == 0 or len(hidden) == rows * columns:
        what = "no patch centre" if len(hidden) == 0 else "every patch"
        raise usage_error(
            f"the --mask box holds {what} of the model's {rows} x {columns} patch grid",
            "hide a part of the picture: some patches, not all of them",
        )
    return hidden


def sweep_hidden(
    model: MaskedLatent,
    image: torch.Tensor,
    gallery: torch.Tensor,
    box: tuple[float, float, float, float],
    runtime: Runtime,
    samples: int = 8,
    top: int = 5,
    radius: float | None = None,
    seed: int = 0,
) -> HiddenSweep:
    """Sweep z for the region ``box`` of one standardised image (1, 3, S, S), matched to the
    same region of the standardised ``gallery`` images (G, 3, S, S). The default radius is
    the 90th percentile of ||z*|| inferred for x's context against the gallery's regions
    (1 where that is 0)."""
    from sslcli.inference.sweep import best_matches, swept_zs
    from sslcli.methods.masked_latent import gather_rows, region_masks
    from sslcli.models.tokens import patch_grid

    if samples < 2 or top < 1:
        raise usage_error("--samples must be 2 or more and --top 1 or more")
    if not model.search.latent_dim:
        raise usage_error(
            "the run has no latent variable (--latent-dim 0): one prediction, nothing to sweep",
            "use energy IMAGE --mask-grid N for it, or train with --latent-dim 16",
        )
    model = model.eval()
    device = runtime.device
    image, gallery = image.to(device), gallery.to(device)
    rows, columns = patch_grid(model.backbone, *image.shape[-2:])
    hidden = box_patches(box, rows, columns).to(device)
    masks = region_masks(hidden, rows * columns, 1)
    with torch.no_grad(), runtime.autocast():
        context = model.context(image, masks).float()
        index = hidden[None].expand(len(gallery), -1)
        regions = torch.cat(
            [
                gather_rows(model.targets(part), index[: len(part)])
                for part in gallery.split(GALLERY_BATCH)
            ]
        )  # (G, P, D)
    count = len(regions)
    many = region_masks(hidden, rows * columns, count)
    fell_back = False
    if radius is None:  # as far as z goes for the gallery's regions
        inferred = model.search.minimise(
            lambda z: squared_error(
                model.predictor(context.expand(count, -1, -1), many, z), regions[:, None]
            ),
            count,
            device,
        )
        radius = float(inferred.z.norm(dim=1).quantile(0.9))
        if radius < 1e-6:  # z* stayed at 0: sweep at a unit radius rather than not at all
            radius, fell_back = 1.0, True
    zs = swept_zs(model.search.latent_dim, samples, radius, seed).to(device)
    swept = region_masks(hidden, rows * columns, samples)
    with torch.no_grad():
        predicted = model.predictor(context.expand(samples, -1, -1), swept, zs)[:, 0].float()
    errors = (predicted[:, None] - regions[None]).pow(2).mean(dim=(2, 3))  # (K, G)
    sweep = best_matches(errors.cpu(), zs.cpu(), top, radius)
    spreads = mean_pair_distance(predicted), mean_pair_distance(regions)
    return HiddenSweep(sweep, hidden.cpu(), *spreads, fell_back)


GALLERY_BATCH = 256


def mean_pair_distance(items: torch.Tensor) -> float:
    """The mean squared distance (per element) between two different items of ``items``."""
    flat = items.flatten(1).double()
    count = len(flat)
    if count < 2:
        return 0.0
    squared = torch.cdist(flat, flat).pow(2) / flat.shape[1]
    return float(squared.sum() / (count * (count - 1)))


def outlined(picture: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """``picture`` with the box (fractions of it) drawn in red."""
    from PIL import ImageDraw

    shown = picture.convert("RGB").copy()
    width, height = shown.size
    x0, y0, x1, y1 = box
    corners = (x0 * (width - 1), y0 * (height - 1), x1 * (width - 1), y1 * (height - 1))
    ImageDraw.Draw(shown).rectangle(corners, outline=(230, 40, 40), width=2)
    return shown
