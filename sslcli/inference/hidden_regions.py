"""``energy IMAGE --mask-grid N``: how predictable each part of a picture is from the rest.

The patch grid of a masked-latent run's ViT is cut into N x N cells (rows and columns split
as evenly as they go); for each cell, F = min_z E + lambda R(z) of predicting its patches'
target representations from all the other patches (``MaskedLatent.hidden_region``). A low F
is a part the rest foretells (background, the continuation of a stroke); a high one, a part
it does not. The map draws F over the picture itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from sslcli.errors import usage_error

if TYPE_CHECKING:
    from sslcli.engine.runtime import Runtime
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
