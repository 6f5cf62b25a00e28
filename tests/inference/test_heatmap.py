"""The energy heatmap: cells, labels, values, a colour bar and a title, drawn with PIL."""

from pathlib import Path

import numpy as np
from PIL import Image

from sslcli.inference.heatmap import colour, write_heatmap


def _region(picture: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    return picture[top:bottom, left:right]


def _has_text(region: np.ndarray) -> bool:
    """Dark ink on the white background."""
    return region.size > 0 and bool((region.min(axis=2) < 100).any())


def test_cells_labels_values_colour_bar_and_title(tmp_path: Path) -> None:
    matrix = np.array([[0.1, 0.5, 0.9], [0.3, 0.7, 1.3]])
    rows = ["0/0_000.png", "0/0_001.png"]
    columns = ["7/7_000.png", "7/7_001.png", "a/long/folder/name/of/the/image/last_one.png"]
    path = tmp_path / "h.png"
    layout = write_heatmap(path, matrix, rows, columns, "energy F(x, y)", "compatible")
    picture = np.asarray(Image.open(path).convert("RGB"))
    cell = layout.cell
    assert picture.shape[:2] == layout.size[::-1]
    assert picture.shape[0] > 2 * cell and picture.shape[1] > 3 * cell  # more than the cells
    left, top, _, _ = layout.matrix
    expected = colour(matrix, 0.1, 1.3)
    for i in range(2):
        for j in range(3):
            corner = picture[top + i * cell + 1, left + j * cell + 1]
            assert (corner == expected[i, j]).all(), (i, j)
            # the value is written in the cell: some of its pixels are not the cell's colour
            inside = picture[top + i * cell : top + (i + 1) * cell, left + j * cell :][:, :cell]
            assert (inside != expected[i, j]).any(axis=2).any(), (i, j)
    assert layout.values_shown
    bar_left, bar_top, bar_right, bar_bottom = layout.colour_bar
    strip = picture[bar_top:bar_bottom, (bar_left + bar_right) // 2]
    gradient = colour(np.linspace(1.3, 0.1, bar_bottom - bar_top), 0.1, 1.3)
    assert (strip == gradient).all()  # max at the top, min at the bottom
    assert (strip[0] == colour(np.array(1.3), 0.1, 1.3)).all()
    for box in (layout.title, layout.row_labels, layout.column_labels):
        assert box is not None and _has_text(_region(picture, box)), box
    scale = (bar_right + 2, bar_top, picture.shape[1], bar_bottom)  # max, min, what low means
    assert _has_text(_region(picture, scale))
    below_row_labels = picture[layout.matrix[3] + 2 :, : layout.matrix[0]]
    assert not _has_text(below_row_labels)  # nothing stray


def test_a_large_matrix_keeps_its_colour_bar_and_drops_what_does_not_fit(tmp_path: Path) -> None:
    matrix = np.random.default_rng(0).uniform(0, 2, (300, 200))
    names = [f"{i}.png" for i in range(300)]
    layout = write_heatmap(tmp_path / "h.png", matrix, names, names[:200], "energy", "compatible")
    picture = np.asarray(Image.open(tmp_path / "h.png").convert("RGB"))
    assert layout.row_labels is None and layout.column_labels is None
    assert not layout.values_shown and layout.cell == 3
    left, top, right, bottom = layout.matrix
    assert (right - left, bottom - top) == (600, 900)
    bar_left, bar_top, _, _ = layout.colour_bar
    low, high = float(matrix.min()), float(matrix.max())
    assert (picture[bar_top, bar_left + 2] == colour(np.array(high), low, high)).all()
