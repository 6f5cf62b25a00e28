"""sslcli energy on real digits with a model trained in the session."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.data.embeddings import read_embeddings
from tests.cli.helpers import diverged_copy, option_help, stated_default
from tests.conftest import copy_digits

runner = CliRunner()


def _run(command: str, tmp_path: Path, *args: str) -> object:
    cache = ["--cache-dir", str(tmp_path / "cache"), "--gpus", "0"]
    return runner.invoke(app, [command, *args, *cache])


def _pair(run: Path, tmp_path: Path, x: Path, y: Path, *extra: str) -> dict:
    result = _run("energy", tmp_path, str(x), str(y), "-m", str(run), "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_image_is_more_compatible_with_itself_than_with_another(
    trained_run: Path, tmp_path: Path
) -> None:
    digits = copy_digits(tmp_path / "digits", "07", 1)
    zero, seven = digits / "0" / "0_000.png", digits / "7" / "7_000.png"
    itself = _pair(trained_run, tmp_path, zero, zero)
    other = _pair(trained_run, tmp_path, zero, seven)
    assert itself["space"] == "projector" and "compatible" in itself["meaning"]
    assert itself["energy"] == pytest.approx(0, abs=1e-5)
    assert itself["energy"] < other["energy"] <= 2


def test_the_matrix_is_one_minus_the_cosine_of_the_embeddings(
    trained_run: Path, tmp_path: Path
) -> None:
    a = copy_digits(tmp_path / "a", "01", 2)
    b = copy_digits(tmp_path / "b", "47", 2)
    matrix, heatmap = tmp_path / "m.csv", tmp_path / "h.png"
    report = _pair(
        trained_run, tmp_path, a, b, "--space", "backbone", "--matrix", str(matrix),
        "--heatmap", str(heatmap),
    )  # fmt: skip
    rows = list(csv.reader(matrix.open()))
    assert rows[0][1:] == report["y"] and [row[0] for row in rows[1:]] == report["x"]
    energies = np.array([row[1:] for row in rows[1:]], dtype=np.float64)
    for folder, name in ((a, "a.npy"), (b, "b.npy")):
        args = [str(folder), "-m", str(trained_run), "-o", str(tmp_path / name)]
        assert _run("embed", tmp_path, *args).exit_code == 0
    ea, eb = (torch.from_numpy(read_embeddings(tmp_path / n)[1]) for n in ("a.npy", "b.npy"))
    cosine = torch.nn.functional.cosine_similarity(ea[:, None], eb[None], dim=2)
    np.testing.assert_allclose(energies, 1 - cosine.numpy(), atol=2e-6)
    np.testing.assert_allclose(report["energies"], energies, atol=2e-6)
    assert Image.open(heatmap).size[0] > Image.open(heatmap).size[1] > 4 * 64  # cells, labels


def test_augmented_views_are_averaged_reproducibly(trained_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "07", 2)
    plain = _pair(trained_run, tmp_path, digits / "0", digits / "7")["energies"]
    views = _pair(trained_run, tmp_path, digits / "0", digits / "7", "--views", "3")
    again = _pair(trained_run, tmp_path, digits / "0", digits / "7", "--views", "3")
    other_seed = _pair(
        trained_run, tmp_path, digits / "0", digits / "7", "--views", "3", "--seed", "1"
    )
    assert views["views"] == 3 and views["energies"] == again["energies"]
    assert views["energies"] != plain and views["energies"] != other_seed["energies"]


def test_images_of_another_size_are_resized_and_it_is_said(
    trained_run: Path, tmp_path: Path, sample_data: Path
) -> None:
    photo = sample_data / "photos" / "coffee.jpg"
    result = _run("energy", tmp_path, str(photo), str(photo), "-m", str(trained_run))
    assert result.exit_code == 0, result.output
    assert "resized to 16x16 px" in result.stderr and "coffee.jpg (" in result.stderr
    assert "F(" in result.stderr


def test_bad_inputs_are_clear_errors(trained_run: Path, tmp_path: Path, sample_data: Path) -> None:
    good = sample_data / "digits" / "0" / "0_000.png"
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    cases = [
        (
            [str(good), str(tmp_path / "nope.png"), "-m", str(trained_run)],
            "nope.png does not exist",
        ),
        ([str(good), str(broken), "-m", str(trained_run)], "broken.png is not an image"),
        (
            [str(good), str(good), "-m", str(trained_run / "encoder"), "--space", "projector"],
            "has no projection head",
        ),
        ([str(good), str(good), "-m", str(trained_run), "--views", "-1"], "--views must be"),
    ]
    for args, message in cases:
        result = _run("energy", tmp_path, *args)
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_the_help_says_energy_runs_on_one_device() -> None:
    words = option_help("energy", "--gpus")
    assert "shard" not in words and "one device" in words, words
    result = runner.invoke(app, ["energy", "a.png", "b.png", "--gpus", "2"])
    assert result.exit_code == 2 and "energy runs on one device" in result.stderr


def test_the_help_states_the_space_energy_uses(trained_run: Path, tmp_path: Path) -> None:
    zero = copy_digits(tmp_path / "digits", "0", 1) / "0" / "0_000.png"
    assert _pair(trained_run, tmp_path, zero, zero)["space"] == stated_default("energy", "--space")


@pytest.mark.parametrize("which", ["joint", "latent", "latent predictor"])
def test_a_diverged_model_is_an_error_naming_it(
    which: str, trained_run: Path, latent_run: Path, tmp_path: Path
) -> None:
    run = trained_run if which == "joint" else latent_run
    prefix = "predictor." if which == "latent predictor" else ""  # finite embeddings, nan E
    broken = diverged_copy(run, tmp_path / "diverged", prefix)
    digits = copy_digits(tmp_path / "digits", "07", 2)
    for x, y in ((digits / "0" / "0_000.png", digits / "7" / "7_000.png"), (digits, digits)):
        result = _run("energy", tmp_path, str(x), str(y), "-m", str(broken), "--json")
        assert result.exit_code == 1, result.output
        assert result.stdout == "" and "nan" not in result.stderr.replace("\n", " ").split()
        said = " ".join(result.stderr.split())
        assert f"run {broken}" in said and "not finite" in said and "diverged" in said, said


def _pairs_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lists" / "pairs.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("which", ["joint", "latent"])
def test_pairs_scores_each_listed_pair_as_energy_of_that_pair_does(
    which: str, trained_run: Path, latent_run: Path, tmp_path: Path, sample_data: Path
) -> None:
    run = trained_run if which == "joint" else latent_run
    copy_digits(tmp_path / "digits", "07", 2)
    photo = sample_data / "photos" / "coffee.jpg"
    listed = [
        ("../digits/0/0_000.png", "../digits/7/7_000.png"),
        ("../digits/0/0_000.png", "../digits/0/0_000.png"),
        (str(photo), "../digits/0/0_001.png"),  # absolute, and another size
        ("../digits/7/7_001.png", "../digits/0/0_000.png"),
    ]
    text = "x,y\n" + "\n".join(f"{x},{y}" for x, y in listed[:2]) + "\n\n"
    text += "\n".join(f"{x},{y}" for x, y in listed[2:]) + "\n"
    pairs = _pairs_file(tmp_path, text)
    result = _run("energy", tmp_path, "--pairs", str(pairs), "-m", str(run), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(row["x"], row["y"]) for row in report["pairs"]] == listed
    assert "energies" not in report and report["pairs_file"] == str(pairs)
    parts = ["energy"] if which == "joint" else ["energy", "energy_at_zero", "z_gap", "z_norm"]
    for row, (x, y) in zip(report["pairs"], listed, strict=True):
        alone = _pair(run, tmp_path, pairs.parent / x, pairs.parent / y)
        assert set(row) == {"x", "y", *parts}
        for part in parts:
            assert row[part] == pytest.approx(alone[part], abs=1e-6), (x, y, part)
    shown = _run("energy", tmp_path, "--pairs", str(pairs), "-m", str(run))
    assert shown.exit_code == 0, shown.output
    table = shown.stderr.split("energy of 4 pairs")[1]
    assert all(f"{row['energy']:.4f}" in table for row in report["pairs"]), table
    assert "coffee.jpg" in table and "7_001.png" in table


def test_bad_pairs_files_are_clear_errors(
    trained_run: Path, tmp_path: Path, sample_data: Path
) -> None:
    copy_digits(tmp_path / "digits", "0", 2)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "broken.png").write_text("not a picture")
    good = "../digits/0/0_000.png,../digits/0/0_001.png\n"
    cases = [
        (None, "does not exist"),
        ("x,y\n" + good + "../digits/0/0_000.png\n", "pairs.csv line 3: expected two"),
        (good + "../digits/0/0_000.png,,\n", "pairs.csv line 2: expected two"),
        (good * 2 + "../digits/0/0_000.png,../digits/0/nope.png\n", "line 3: "),
        (good + "broken.png,../digits/0/0_000.png\n", "pairs.csv line 2: "),
        ("x,y\n\n", "holds no pairs"),
    ]
    for text, message in cases:
        pairs = tmp_path / "lists" / "pairs.csv"
        pairs.unlink(missing_ok=True)
        if text is not None:
            pairs.write_text(text)
        result = _run("energy", tmp_path, "--pairs", str(pairs), "-m", str(trained_run))
        said = " ".join(result.stderr.split())
        assert result.exit_code == 2 and message in said, (text, result.output)
        if "nope" in (text or ""):
            assert "nope.png does not exist" in said
        if "broken" in (text or ""):
            assert "broken.png is not an image" in said
    image = str(sample_data / "digits" / "0" / "0_000.png")
    for args, message in (
        ([image, image, "--pairs", str(pairs)], "give X and Y, or --pairs"),
        ([image], "give X and Y, or --pairs"),
        (["--pairs", str(pairs), "--matrix", "m.csv"], "--matrix and --heatmap"),
    ):
        result = _run("energy", tmp_path, *args, "-m", str(trained_run))
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_pairs_with_views_compare_two_views_of_each_image(
    trained_run: Path, tmp_path: Path
) -> None:
    copy_digits(tmp_path / "digits", "07", 1)
    pairs = _pairs_file(tmp_path, "../digits/0/0_000.png,../digits/0/0_000.png\n")
    args = ["--pairs", str(pairs), "-m", str(trained_run), "--json", "--views", "2"]
    first, again = (json.loads(_run("energy", tmp_path, *args).stdout) for _ in range(2))
    assert first["pairs"] == again["pairs"] and first["views"] == 2
    assert first["pairs"][0]["energy"] > 1e-4  # an image against itself, in two other views


def test_the_heatmap_is_labelled_and_has_a_colour_bar(trained_run: Path, tmp_path: Path) -> None:
    a = copy_digits(tmp_path / "a", "01", 2)
    b = copy_digits(tmp_path / "b", "47", 2)
    heatmap = tmp_path / "h.png"
    _pair(trained_run, tmp_path, a, b, "--heatmap", str(heatmap))
    picture = np.asarray(Image.open(heatmap).convert("RGB"))
    height, width = picture.shape[:2]
    assert width > height  # the colour bar beside the 4 x 4 cells
    white = (picture.min(axis=2) > 250).mean()
    ink = (picture.max(axis=2) < 60).mean()
    assert white > 0.2 and ink > 0.001  # a background with text on it, not the cells alone
