"""energy IMAGE --mask-grid N: the grid's cells, and F of each cell hidden in turn."""

import pytest
import torch

from sslcli.engine.runtime import make_runtime
from sslcli.errors import SSLError
from sslcli.inference.hidden_regions import grid_cells, grid_energies
from sslcli.methods.masked_latent import MaskedLatent
from sslcli.models.backbones import BackboneOptions, build_backbone


@pytest.mark.parametrize(("rows", "columns", "cells"), [(4, 4, 2), (7, 5, 3), (8, 8, 8)])
def test_the_cells_cover_every_patch_once_in_rectangles(
    rows: int, columns: int, cells: int
) -> None:
    parts = grid_cells(rows, columns, cells)
    assert len(parts) == cells * cells
    assert sorted(torch.cat(parts).tolist()) == list(range(rows * columns))
    for part in parts:
        part_rows, part_columns = part // columns, part % columns
        height = int(part_rows.max() - part_rows.min()) + 1
        width = int(part_columns.max() - part_columns.min()) + 1
        assert height * width == len(part)  # a whole rectangle
        assert height in (rows // cells, -(-rows // cells))
    # the first cell is the top left one, the last the bottom right one
    assert int(parts[0][0]) == 0 and int(parts[-1][-1]) == rows * columns - 1


@pytest.mark.parametrize("cells", [1, 5])
def test_a_grid_that_does_not_fit_the_patches_is_refused(cells: int) -> None:
    with pytest.raises(SSLError, match="between 2 and 4"):
        grid_cells(4, 4, cells)


def _model(latent_dim: int) -> MaskedLatent:
    torch.manual_seed(0)
    backbone = build_backbone("vit-tiny", BackboneOptions(image_size=16, patch_size=4))
    return MaskedLatent(backbone, latent_dim=latent_dim)


def test_each_cells_free_energy_is_at_most_its_energy_at_zero() -> None:
    runtime = make_runtime("cpu", "fp32", 0)
    image = torch.randn(3, 16, 16)
    with_z = grid_energies(_model(4), image, 2, runtime)
    assert with_z.free_energy.shape == (2, 2)
    assert (with_z.free_energy <= with_z.energy_at_zero + 1e-6).all()
    without = grid_energies(_model(0), image, 2, runtime)  # no z: F = E
    assert (without.free_energy == without.energy_at_zero).all()
    # each cell hidden in turn gives its own F
    assert len(set(with_z.free_energy.round(6).flatten().tolist())) == 4


def test_a_box_hides_the_patches_whose_centres_it_holds() -> None:
    from sslcli.inference.hidden_regions import box_patches, parse_box

    lower_half = parse_box("0,0.5,1,1")
    assert box_patches(lower_half, 4, 4).tolist() == list(range(8, 16))
    assert box_patches(parse_box("0.5,0,1,0.3"), 4, 4).tolist() == [2, 3]
    for text, says in (
        ("0,0,2,1", "is not a box inside the picture"),
        ("0.5,0.5,0.4,1", "is not a box inside the picture"),
        ("0,0,1", "takes four fractions"),
    ):
        with pytest.raises(SSLError, match=says):
            parse_box(text)
    with pytest.raises(SSLError, match="holds no patch centre"):
        box_patches(parse_box("0,0,0.1,0.1"), 4, 4)
    with pytest.raises(SSLError, match="holds every patch"):
        box_patches(parse_box("0,0,1,1"), 4, 4)


def test_the_spread_is_the_mean_squared_distance_of_two_different_items() -> None:
    from sslcli.inference.hidden_regions import mean_pair_distance

    items = torch.randn(5, 3, 4)
    direct = [(items[i] - items[j]).pow(2).mean() for i in range(5) for j in range(5) if i != j]
    assert mean_pair_distance(items) == pytest.approx(float(torch.stack(direct).mean()))
