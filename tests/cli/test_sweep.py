"""sslcli sweep: its help and its refusals."""

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.cli.helpers import diverged_copy, option_help
from tests.conftest import copy_digits

runner = CliRunner()


def test_the_help_says_sweep_runs_on_one_device() -> None:
    words = option_help("sweep", "--gpus")
    assert "shard" not in words and "one device" in words, words
    result = runner.invoke(app, ["sweep", "x.png", "--gallery", "g", "--gpus", "2"])
    assert result.exit_code == 2 and "sweep runs on one device" in result.stderr


def test_a_diverged_predictor_is_an_error_naming_it(latent_run: Path, tmp_path: Path) -> None:
    broken = diverged_copy(latent_run, tmp_path / "diverged", "predictor.")
    digits = copy_digits(tmp_path / "digits", "07", 3)
    args = [str(digits / "0" / "0_000.png"), "--gallery", str(digits), "-m", str(broken)]
    result = runner.invoke(app, ["sweep", *args, "--gpus", "0", "--radius", "1", "--json"])
    assert result.exit_code == 1 and result.stdout == "", result.output
    said = " ".join(result.stderr.split())
    assert f"run {broken}" in said and "not finite" in said and "diverged" in said, said


def test_the_sheet_labels_its_rows_and_energies(latent_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "017", 2)
    sheet = tmp_path / "sheet.png"
    args = [str(digits / "1" / "1_000.png"), "--gallery", str(digits), "-m", str(latent_run)]
    args += ["--samples", "3", "--top", "2", "--grid", str(sheet), "--gpus", "0"]
    result = runner.invoke(app, ["sweep", *args, "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    width, height = Image.open(sheet).size
    assert width > 3 * 100 and height > 3 * 100 + 3 * 20  # a label column, 2 text lines a row
