"""train-latent end to end on real digits: metrics, exact resume, energy of its runs."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from tests.conftest import copy_digits
from tests.training.rewound import rewound_copy

runner = CliRunner()


def _options(tmp_path: Path, out: str, *extra: str) -> list[str]:
    return [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "2",
        "--gpus", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out),
        "--optimizer", "sgd", "--lr", "0.5", "--projector-hidden-dim", "64",
        "--projector-dim", "32", "--latent-dim", "4", *extra,
    ]  # fmt: skip


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return copy_digits(tmp_path / "digits")


@pytest.mark.parametrize("target", ["online", "ema"])
def test_a_run_logs_energy_z_gap_and_z_norm_and_resumes_exactly(
    digits: Path, tmp_path: Path, target: str
) -> None:
    options = _options(tmp_path, "run", "--checkpoint-every", "1", "--json", "--target", target)
    result = runner.invoke(app, ["train-latent", str(digits), *options])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["step"] == 4 and report["z_gap"] >= 0 and report["energy"] > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "latent" and config["method_options"]["latent_dim"] == 4
    # the defaults are recorded too, so a later change of a default cannot change this run
    assert config["method_options"]["z_weight"] == 0.1 and config["method_options"]["z_steps"]
    assert config["method_options"]["target"] == target
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert all({"energy", "z_gap", "z_norm"} <= set(m) for m in steps if "loss" in m)
    # resume from the step-3 checkpoint: the last step is trained again, to the same weights
    final = load_checkpoint(resolve_resume(tmp_path / "run")).weights
    rewound_copy(tmp_path / "run", tmp_path / "again", last_kept=3, removed=4)
    options = _options(tmp_path, "again", "--checkpoint-every", "1", "--target", target)
    options += ["--resume", str(tmp_path / "again")]
    resumed = runner.invoke(app, ["train-latent", str(digits), *options])
    assert resumed.exit_code == 0, resumed.output
    again = load_checkpoint(resolve_resume(tmp_path / "again")).weights
    for name, tensor in final.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=0, msg=name)


def test_bad_latent_options_are_clear_errors(digits: Path, tmp_path: Path) -> None:
    for extra, message in (
        (("--z-reg", "l3"), "--z-reg must be l2 or l1"),
        (("--z-dropout", "1.5"), "--z-dropout must be between 0 and 1"),
        (("--latent-dim", "-1"), "--latent-dim must be 0 or more"),
        (("--target", "mean"), "--target must be online or ema"),
    ):
        result = runner.invoke(app, ["train-latent", str(digits), *_options(tmp_path, "x", *extra)])
        assert result.exit_code == 2 and message in result.stderr, result.output
    siamese = runner.invoke(app, ["train-siamese", str(digits), "--method", "latent"])
    assert siamese.exit_code == 2 and "sslcli train-latent" in siamese.stderr


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("latent")
    digits = copy_digits(work / "digits")
    result = runner.invoke(app, ["train-latent", str(digits), *_options(work, "run")])
    assert result.exit_code == 0, result.output
    return work / "run"


def test_energy_of_a_latent_run_reports_f_and_its_parts(
    latent_run: Path, digits: Path, tmp_path: Path
) -> None:
    zero, seven = digits / "0" / "0_000.png", digits / "7" / "7_000.png"
    args = ["energy", str(zero), str(seven), "-m", str(latent_run), "--gpus", "0", "--json"]
    report = json.loads(runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "c")]).stdout)
    assert report["space"] == "latent" and "min over z" in report["meaning"]
    assert report["energy"] <= report["energy_at_zero"] + 1e-7
    assert report["z_gap"] == pytest.approx(report["energy_at_zero"] - report["energy"])
    refused = runner.invoke(app, [*args, "--space", "backbone"])
    assert refused.exit_code == 2 and "--space applies to joint-embedding" in refused.stderr


def test_sweep_shows_one_row_per_latent_value(
    latent_run: Path, digits: Path, tmp_path: Path, trained_run: Path
) -> None:
    image, sheet = digits / "1" / "1_000.png", tmp_path / "sheet.png"
    args = [str(image), "--gallery", str(digits), "-m", str(latent_run), "--gpus", "0"]
    args += ["--samples", "4", "--top", "3", "--grid", str(sheet), "--radius", "2", "--json"]
    result = runner.invoke(app, ["sweep", *args, "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["radius"] == 2 and len(report["rows"]) == 4
    assert [round(row["z_norm"], 4) for row in report["rows"]] == [0, 2, 2, 2]
    for row in report["rows"]:
        assert len(row["matches"]) == 3 and row["energies"] == sorted(row["energies"])
    assert Image.open(sheet).size > (4 * 100, 4 * 100)  # thumbnails, labels and energies
    joint = ["sweep", str(image), "--gallery", str(digits), "-m", str(trained_run), "--gpus", "0"]
    refused = runner.invoke(app, joint)
    assert refused.exit_code == 2 and "no latent variable" in refused.stderr
