"""sslcli embed end to end on real digits with a model trained in the session."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.data.cache import square_resize
from sslcli.data.embeddings import read_embeddings
from sslcli.data.normalization import normalize
from sslcli.data.store import open_store
from sslcli.runs.loading import load_model
from tests.cli.helpers import diverged_copy, option_help, stated_default
from tests.conftest import copy_digits

runner = CliRunner()


def _embed(tmp_path: Path, *args: str) -> object:
    cache = ["--cache-dir", str(tmp_path / "cache"), "--gpus", "0"]
    return runner.invoke(app, ["embed", *args, *cache])


def test_embeddings_equal_the_models_forward_on_the_same_preprocessed_batch(
    trained_run: Path, tmp_path: Path
) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 5)
    out = tmp_path / "e.npy"
    result = _embed(tmp_path, str(digits), "-m", str(trained_run), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 10 and report["dimensions"] == 128 and report["space"] == "backbone"
    names, rows = read_embeddings(out)
    assert names == sorted(p.relative_to(digits).as_posix() for p in digits.rglob("*.png"))
    model = load_model(str(trained_run))
    # embed's preprocessing: the stored image (shorter side 19 = 8/7 x 16), resized to 16
    stored = open_store([digits / name for name in names], 19, tmp_path / "cache")
    batch = np.stack(
        [square_resize(Image.fromarray(stored.pixels(i)), 16) for i in range(len(names))]
    )
    images = normalize(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        expected = model.backbone.eval()(images)
    np.testing.assert_allclose(rows, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_two_processes_write_what_one_process_writes(trained_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 5)
    for procs in ("1", "2"):
        out = tmp_path / f"e{procs}.safetensors"
        args = [str(digits), "-m", str(trained_run), "-o", str(out), "--cpu-procs", procs]
        result = _embed(tmp_path, *args, "--space", "projector")
        assert result.exit_code == 0, result.output
    one, two = (
        read_embeddings(tmp_path / "e1.safetensors"),
        read_embeddings(tmp_path / "e2.safetensors"),
    )
    assert one[0] == two[0] and one[1].shape == (10, 32)
    np.testing.assert_allclose(one[1], two[1], rtol=1e-5, atol=1e-6)


def test_neighbours_file_and_duplicates(trained_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 3)
    shutil.copy(digits / "0" / "0_000.png", digits / "1" / "copy_of_0_000.png")
    out, knn = tmp_path / "e.csv", tmp_path / "nn.csv"
    args = [
        str(digits),
        "-m",
        str(trained_run),
        "-o",
        str(out),
        "--knn",
        "2",
        "--knn-out",
        str(knn),
    ]
    result = _embed(tmp_path, *args, "--json")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(knn.open()))
    assert len(rows) == 7 * 2 and {r["rank"] for r in rows} == {"1", "2"}
    first = {r["name"]: r for r in rows if r["rank"] == "1"}
    assert first["0/0_000.png"]["neighbour"] == "1/copy_of_0_000.png"
    assert float(first["0/0_000.png"]["similarity"]) == pytest.approx(1.0, abs=1e-5)
    closest = json.loads(result.stdout)["closest_pairs"][0]
    assert {closest["name"], closest["neighbour"]} == {"0/0_000.png", "1/copy_of_0_000.png"}


def test_corrupt_images_are_skipped_and_listed_or_fail_with_strict(
    trained_run: Path, tmp_path: Path
) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 2)
    (digits / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "e.npy"
    result = _embed(tmp_path, str(digits), "-m", str(trained_run), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 4 and "broken.png" in report["skipped"][0]
    assert "broken.png" in result.stderr
    result = _embed(
        tmp_path, str(digits), "-m", str(trained_run), "-o", str(tmp_path / "s.npy"), "--strict"
    )
    assert result.exit_code == 2 and "broken.png" in result.stderr
    assert not (tmp_path / "s.npy").exists()


def test_existing_output_is_kept_unless_overwrite(trained_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 2)
    out = tmp_path / "e.npy"
    out.write_bytes(b"precious")
    result = _embed(tmp_path, str(digits), "-m", str(trained_run), "-o", str(out))
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert out.read_bytes() == b"precious"
    result = _embed(tmp_path, str(digits), "-m", str(trained_run), "-o", str(out), "--overwrite")
    assert result.exit_code == 0 and read_embeddings(out)[1].shape == (4, 128)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "e.txt"], "cannot tell the format"),
        (["-o", "e.npy", "--knn-out", "n.csv"], "--knn-out needs --knn"),
        (["-o", "e.npy", "--knn", "2", "--knn-out", "n.txt"], "cannot tell the format of n.txt"),
        (["-o", "e.npy", "-m", "resnet-18"], "unknown backbone"),
    ],
)
def test_bad_options_are_clear_errors(
    sample_data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = _embed(tmp_path, str(sample_data / "digits" / "0"), *args)
    assert result.exit_code == 2 and message in result.stderr


def test_the_help_states_the_space_embed_uses(trained_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 2)
    out = tmp_path / "e.npy"
    result = _embed(tmp_path, str(digits), "-m", str(trained_run), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["space"] == stated_default("embed", "--space") == "backbone"
    assert "shard" in option_help("embed", "--gpus")  # embed does shard the images


def test_a_diverged_model_is_an_error_naming_it(trained_run: Path, tmp_path: Path) -> None:
    broken = diverged_copy(trained_run, tmp_path / "diverged")
    digits = copy_digits(tmp_path / "digits", "01", 2)
    for space, procs in (("backbone", "1"), ("projector", "2")):
        out = tmp_path / f"e-{procs}.npy"
        args = [str(digits), "-m", str(broken), "-o", str(out), "--space", space]
        result = _embed(tmp_path, *args, "--cpu-procs", procs)
        assert result.exit_code == 1, result.output
        said = " ".join(result.stderr.split())
        assert f"run {broken}" in said and "not finite" in said and "diverged" in said, said
        assert not out.exists()


def test_a_vits_patch_space_is_its_patch_tokens_averaged(tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 3)
    out = tmp_path / "p.npy"
    model = ["-m", "vit-tiny", "--size", "32", "--space", "patch"]
    torch.manual_seed(3)  # a random backbone's weights come from torch's seed
    result = _embed(tmp_path, str(digits), *model, "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dimensions"] == 192
    names, rows = read_embeddings(out)
    vit = load_model("vit-tiny", 32).backbone.eval()
    stored = open_store([digits / name for name in names], 37, tmp_path / "cache")
    batch = np.stack(
        [square_resize(Image.fromarray(stored.pixels(i)), 32) for i in range(len(names))]
    )
    images = normalize(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        tokens = vit.forward_features(images)  # (N, 1 + 64, 192): the class token first
    expected = tokens[:, 1:].mean(dim=1)
    np.testing.assert_allclose(rows, expected.numpy(), rtol=1e-4, atol=1e-5)
    cnn = _embed(tmp_path, str(digits), "-m", "tiny-cnn", "--space", "patch", "-o", "x.npy")
    assert cnn.exit_code == 2 and "has no patch tokens" in cnn.stderr
