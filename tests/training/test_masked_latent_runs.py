"""train-latent --objective masked end to end on real digits: what it logs, exact resume,
its encoder used by embed, and the settings it refuses; the same for its pixel baseline
(``--predict pixels``, MAE)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.conftest import SAMPLE_DATA, copy_digits
from tests.training.rewound import assert_resumes_to_the_same_weights

runner = CliRunner()


def _options(tmp_path: Path, out: str, *extra: str) -> list[str]:
    return [
        "--objective", "masked", "--backbone", "vit-tiny", "--patch-size", "4", "--size", "16",
        "--batch-size", "16", "--epochs", "2", "--gpus", "0", "--latent-dim", "4",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out), *extra,
    ]  # fmt: skip


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return copy_digits(tmp_path / "digits")


def test_a_masked_run_logs_its_energies_resumes_exactly_and_embeds(
    digits: Path, tmp_path: Path
) -> None:
    options = _options(tmp_path, "run", "--checkpoint-every", "1", "--json")
    result = runner.invoke(app, ["train-latent", str(digits), *options])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["step"] == 4 and report["z_gap"] >= 0 and report["energy"] > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "masked-latent" and config["preset"] == "minimal"
    assert config["optimizer"] == "adamw" and config["final_weight_decay"] == 0.4
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert all({"energy", "z_gap", "effective_rank"} <= set(r) for r in records if "loss" in r)
    # the z-gap on the evaluation images too, at the last epoch's evaluation
    (held_out,) = [r for r in records if "held_out_z_gap" in r]
    assert held_out["step"] == 4 and held_out["held_out_z_gap"] >= 0
    # resume from the step-3 checkpoint: the last step is trained again, to the same weights
    assert_resumes_to_the_same_weights("train-latent", tmp_path / "run", tmp_path / "again", 4)
    embedded = runner.invoke(
        app,
        ["embed", str(digits), "-m", str(tmp_path / "run"), "-o", str(tmp_path / "e.npy"),
         "--gpus", "0", "--cache-dir", str(tmp_path / "cache"), "--json"],
    )  # fmt: skip
    assert embedded.exit_code == 0, embedded.output
    assert json.loads(embedded.stdout)["dimensions"] == 192
    # energy IMAGE --mask-grid: F of each quarter of a digit hidden in turn, drawn over it
    image = next(digits.rglob("*.png"))
    grid = ["energy", str(image), "-m", str(tmp_path / "run"), "--mask-grid", "2", "--gpus", "0"]
    grid += ["--cache-dir", str(tmp_path / "cache"), "--heatmap", str(tmp_path / "map.png")]
    scored = runner.invoke(app, [*grid, "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    free, at_zero = np.array(report["free_energy"]), np.array(report["energy_at_zero"])
    assert free.shape == (2, 2) and (free > 0).all() and (free <= at_zero + 1e-6).all()
    assert Image.open(tmp_path / "map.png").size[0] > 100
    too_fine = runner.invoke(app, [*grid[:-2], "--mask-grid", "5"])
    assert (
        too_fine.exit_code == 2 and "does not fit the model's 4 x 4 patch grid" in too_fine.stderr
    )
    # sweep IMAGE --mask: what each z puts in the lower half, matched among the digits
    swept = runner.invoke(
        app,
        ["sweep", str(image), "--gallery", str(digits), "-m", str(tmp_path / "run"),
         "--mask", "0,0.5,1,1", "--samples", "4", "--top", "3", "--gpus", "0",
         "--cache-dir", str(tmp_path / "cache"), "--grid", str(tmp_path / "sheet.png"), "--json"],
    )  # fmt: skip
    assert swept.exit_code == 0, swept.output
    sweep_report = json.loads(swept.stdout)
    assert sweep_report["hidden_patches"] == 8 and len(sweep_report["rows"]) == 4
    assert all(len(row["matches"]) == 3 for row in sweep_report["rows"])
    assert sweep_report["prediction_spread"] > 0 and sweep_report["gallery_spread"] > 0
    assert Image.open(tmp_path / "sheet.png").size[1] > 4 * 96
    other = runner.invoke(app, ["energy", str(image), "-m", "vit-tiny", "--mask-grid", "2"])
    assert other.exit_code == 2
    assert "needs a run of train-latent --objective masked" in other.stderr


def test_after_two_epochs_of_the_sample_digits_z_still_lowers_the_held_out_energy(
    tmp_path: Path,
) -> None:
    """74 steps on the 600 sample digits: with the views objective's z steps of 10 every step
    overshot by then, z* stayed 0 and the held-out z-gap was exactly 0 (steps of 0.1, the
    default here, gave 0.025)."""
    options = _options(tmp_path, "run")
    result = runner.invoke(app, ["train-latent", str(SAMPLE_DATA / "digits"), *options])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    (held_out,) = [r for r in records if "held_out_z_gap" in r]
    assert held_out["step"] == 74 and held_out["held_out_z_gap"] > 1e-3, held_out


def test_a_pixel_run_logs_its_held_out_error_resumes_exactly_and_has_no_energy(
    digits: Path, tmp_path: Path
) -> None:
    options = _options(tmp_path, "mae", "--checkpoint-every", "1", "--json")
    at = options.index("--latent-dim")
    del options[at : at + 2]  # MAE has no z
    command = ["train-latent", str(digits), *options, "--predict", "pixels", "--mask-ratio", "0.5"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["step"] == 4 and report["loss"] > 0
    config = json.loads((tmp_path / "mae" / "config.json").read_text())
    assert config["method"] == "mae" and config["method_options"] == {"mask_ratio": 0.5}
    assert config["optimizer"] == "adamw" and config["weight_decay"] == 0.05
    records = [json.loads(line) for line in (tmp_path / "mae" / "metrics.jsonl").open()]
    (held_out,) = [r for r in records if "held_out_pixel_error" in r]
    assert held_out["step"] == 4 and held_out["held_out_pixel_error"] > 0
    assert_resumes_to_the_same_weights("train-latent", tmp_path / "mae", tmp_path / "again", 4)
    image = next(digits.rglob("*.png"))
    grid = ["energy", str(image), "-m", str(tmp_path / "mae"), "--mask-grid", "2", "--gpus", "0"]
    refused = runner.invoke(app, grid)
    assert refused.exit_code == 2 and "(--predict latent)" in refused.stderr
    assert "mae" in refused.stderr


PIXELS = ("--objective", "masked", "--predict", "pixels", "--backbone", "vit-tiny")


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("train-latent", ["--objective", "masked", "--backbone", "tiny-cnn"], "has none"),
        ("train-latent", ["--objective", "pixels"], "unknown --objective 'pixels'"),
        (
            "train-latent",
            ["--objective", "masked", "--backbone", "vit-tiny", "--target", "ema"],
            "--target does not apply to masked-latent",
        ),
        ("train-siamese", ["--method", "masked-latent"], "--objective masked"),
        ("train-siamese", ["--method", "mae"], "--objective masked --predict pixels"),
        ("train-latent", ["--predict", "pixels"], "give --objective masked --predict pixels"),
        ("train-latent", ["--objective", "masked", "--predict", "pixel"], "unknown --predict"),
        ("train-latent", [*PIXELS, "--latent-dim", "4"], "--latent-dim does not apply to mae"),
        (
            "train-latent",
            [*PIXELS, "--mask-ratio", "1"],
            "--mask-ratio must be above 0 and below 1",
        ),
    ],
)
def test_settings_the_masked_objective_cannot_take_are_refused(
    digits: Path, tmp_path: Path, command: str, extra: list[str], message: str
) -> None:
    options = ["--gpus", "0", "--out", str(tmp_path / "x"), *extra]
    result = runner.invoke(app, [command, str(digits), *options])
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()
