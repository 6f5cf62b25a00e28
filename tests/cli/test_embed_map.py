"""sslcli embed --map: a 2-D map of the embeddings, on real digits with a tiny random CNN."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.inference.embedding_map import PALETTE, PLOT, class_colours
from tests.conftest import copy_digits

runner = CliRunner()
MODEL = ["-m", "tiny-cnn", "--size", "32"]


def _embed(tmp_path: Path, *args: str) -> object:
    cache = ["--cache-dir", str(tmp_path / "cache"), "--gpus", "0"]
    return runner.invoke(app, ["embed", *args, *MODEL, *cache])


def _count(picture: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((picture.reshape(-1, 3) == colour).all(axis=1).sum())


def test_a_map_of_class_folders_colours_each_class(tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "0147", 3)
    out, path = tmp_path / "e.npy", tmp_path / "map.png"
    args = [str(digits), "-o", str(out), "--map", str(path), "--map-method", "pca", "--json"]
    result = _embed(tmp_path, *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["map"] == str(path) and report["map_projection"] == "pca"
    assert 0 < report["map_explained_variance"] <= 1
    picture = np.asarray(Image.open(path).convert("RGB"))
    height, width = picture.shape[:2]
    assert PLOT < width < PLOT + 200 and PLOT // 3 < height <= PLOT + 100  # frame + legend
    swatch = 8 * 8  # a legend swatch is a line of text high and wide, about 12 px
    for colour in class_colours(4):  # each class's points and its legend swatch
        assert _count(picture, colour) >= swatch, colour
    assert _count(picture, PALETTE[4]) == 0  # no fifth class
    assert _count(picture, (0, 0, 0)) > 20 * 20  # the digits' black backgrounds: thumbnails


def test_without_classes_one_colour_and_the_table_names_the_map(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(copy_digits(tmp_path / "digits", "01", 3).rglob("*.png")):
        shutil.copy(path, flat / path.name)
    path = tmp_path / "map.png"
    result = _embed(tmp_path, str(flat), "-o", str(tmp_path / "e.npy"), "--map", str(path))
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "│ map " in said and ("% of the variance)" in said or "(UMAP)" in said), said
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert _count(picture, PALETTE[0]) > 0 and _count(picture, PALETTE[1]) == 0
    assert picture.shape[1] == PLOT + 12  # the frame and its margins: no legend


def test_an_existing_map_is_kept_unless_overwrite(tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 2)
    path = tmp_path / "map.png"
    path.write_bytes(b"precious")
    args = [str(digits), "-o", str(tmp_path / "e.npy"), "--map", str(path)]
    result = _embed(tmp_path, *args)
    assert result.exit_code == 2 and f"{path} already exists" in result.stderr
    assert path.read_bytes() == b"precious" and not (tmp_path / "e.npy").exists()
    result = _embed(tmp_path, *args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(path).size[0] >= PLOT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "map.jpg"], "--map draws a PNG: map.jpg does not end with .png"),
        (["--map-method", "pca"], "--map-method needs --map PATH.png"),
        (["--map", "m.png", "--map-method", "tsne"], "--map-method must be auto, pca or umap"),
    ],
)
def test_bad_map_options_are_clear_errors(
    sample_data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = _embed(tmp_path, str(sample_data / "digits" / "0"), "-o", "e.npy", *args)
    assert result.exit_code == 2 and message in " ".join(result.stderr.split())


@pytest.mark.skipif(importlib.util.find_spec("umap") is not None, reason="umap-learn installed")
def test_umap_without_umap_learn_says_how_to_install_it(tmp_path: Path) -> None:
    args = ["--map", str(tmp_path / "m.png"), "--map-method", "umap"]
    result = _embed(tmp_path, str(tmp_path), "-o", str(tmp_path / "e.npy"), *args)
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "needs the umap-learn package" in said
    assert "pip install umap-learn" in said


def test_fewer_than_three_images_are_refused_before_embedding(tmp_path: Path) -> None:
    two = [str(p) for p in sorted(copy_digits(tmp_path / "digits", "0", 2).rglob("*.png"))]
    result = _embed(tmp_path, *two, "-o", str(tmp_path / "e.npy"), "--map", str(tmp_path / "m.png"))
    said = " ".join(result.stderr.split())
    assert (
        result.exit_code == 2 and "--map needs 3 images or more, and only 2 could be used" in said
    )
    assert not (tmp_path / "e.npy").exists() and not (tmp_path / "m.png").exists()
