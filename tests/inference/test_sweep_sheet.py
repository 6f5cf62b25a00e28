"""The sweep sheet of a real latent run: a labelled row per z, and each match's E under it."""

from pathlib import Path

import numpy as np
from PIL import Image

from sslcli.data.cache import square_resize
from sslcli.data.images import load_image
from sslcli.engine.runtime import make_runtime
from sslcli.inference.embedding import decode_inputs
from sslcli.inference.sweep import THUMBNAIL, sweep_latent, write_sweep_sheet
from sslcli.runs.loading import load_model
from tests.conftest import copy_digits


def _has_text(picture: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    left, top, right, bottom = box
    region = picture[top:bottom, left:right]
    return region.size > 0 and bool((region.min(axis=2) < 100).any())


def test_rows_are_labelled_and_each_match_has_its_energy(latent_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "017", 2)
    image = digits / "1" / "1_000.png"
    model = load_model(str(latent_run))
    cache = tmp_path / "cache"
    query = decode_inputs([image], model.size, cache, strict=True, show=False)
    gallery = decode_inputs([digits], model.size, cache, show=False)
    sweep = sweep_latent(model, query.pixels, gallery.pixels, make_runtime("cpu", "fp32", 0), 3, 2)
    path = tmp_path / "sheet.png"
    layout = write_sweep_sheet(path, image, sweep, gallery.paths, gallery.names)
    picture = np.asarray(Image.open(path).convert("RGB"))
    bare = (3 * (THUMBNAIL + 4), 3 * (THUMBNAIL + 4))  # the old sheet: thumbnails alone
    assert picture.shape[1] > bare[0] and picture.shape[0] > bare[1]
    assert len(layout.row_labels) == 3 and all(len(row) == 3 for row in layout.thumbnails)
    x = square_resize(load_image(image, shortest=THUMBNAIL), THUMBNAIL)
    for row in range(3):
        assert _has_text(picture, layout.row_labels[row]), row  # z = 0, z1, z2 and ||z||
        left, top, right, bottom = layout.thumbnails[row][0]
        assert (picture[top:bottom, left:right] == x).all()  # x starts every row
        for column in range(3):
            assert _has_text(picture, layout.captions[row][column]), (row, column)
    assert _has_text(picture, layout.title)
    assert layout.title_lines[0].startswith("latent sweep of 1_000.png")
