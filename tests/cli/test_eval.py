"""sslcli eval on real digits: the figures equal the library's on the same embeddings."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.data.embeddings import read_embeddings
from sslcli.eval.knn import knn_accuracy
from sslcli.eval.linear_probe import linear_probe_accuracy
from tests.cli.helpers import diverged_copy, option_help, stated_default
from tests.conftest import copy_digits

runner = CliRunner()


def _run(command: str, tmp_path: Path, *args: str) -> object:
    cache = ["--cache-dir", str(tmp_path / "cache"), "--gpus", "0"]
    return runner.invoke(app, [command, *args, *cache])


def _embedded(run: Path, folder: Path, tmp_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    out = tmp_path / f"{folder.name}.npy"
    assert _run("embed", tmp_path, str(folder), "-m", str(run), "-o", str(out)).exit_code == 0
    names, rows = read_embeddings(out)
    labels = torch.tensor([int(name.split("/")[0] == "7") for name in names])
    return torch.from_numpy(rows), labels


def test_eval_with_a_test_folder_reports_knn_probe_and_collapse(
    trained_run: Path, tmp_path: Path
) -> None:
    train = copy_digits(tmp_path / "train", "07", 8)
    test = tmp_path / "test"
    for label in "07":
        (test / label).mkdir(parents=True)
        for path in sorted((train / label).glob("*.png"))[:3]:
            path.rename(test / label / path.name)
    args = [str(train), "-m", str(trained_run), "--test-dir", str(test), "--k", "3", "--json"]
    result = _run("eval", tmp_path, *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["train_images"], report["test_images"], report["classes"]) == (10, 6, 2)
    train_x, train_y = _embedded(trained_run, train, tmp_path)
    test_x, test_y = _embedded(trained_run, test, tmp_path)
    assert report["knn_accuracy"] == knn_accuracy(train_x, train_y, test_x, test_y, k=3)
    assert report["linear_probe_accuracy"] == pytest.approx(
        linear_probe_accuracy(train_x, train_y, test_x, test_y)
    )
    assert report["dimensions"] == 128 and report["embedding_std"] > 0
    assert 1 <= report["effective_rank"] <= 16


def test_eval_holds_out_part_of_each_class_without_a_test_folder(
    trained_run: Path, tmp_path: Path
) -> None:
    digits = copy_digits(tmp_path / "digits", "0147", 5)
    result = _run("eval", tmp_path, str(digits), "-m", str(trained_run), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["train_images"], report["test_images"], report["classes"]) == (16, 4, 4)
    assert report["k"] == 16 and "20% of each class" in report["split"]
    assert 0 <= report["knn_accuracy"] <= 1 and np.isfinite(report["linear_probe_accuracy"])


def test_eval_of_an_unlabelled_folder_is_a_clear_error(
    trained_run: Path, tmp_path: Path, sample_data: Path
) -> None:
    result = _run("eval", tmp_path, str(sample_data / "photos"), "-m", str(trained_run))
    assert result.exit_code == 2 and "is not a labelled folder" in result.stderr


def test_eval_prints_a_table_for_humans(trained_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 5)
    result = _run("eval", tmp_path, str(digits), "-m", str(trained_run))
    assert result.exit_code == 0, result.output
    for row in ("kNN accuracy", "linear probe accuracy", "embedding std", "effective rank"):
        assert row in result.stderr


def test_the_help_says_eval_runs_on_one_device() -> None:
    words = option_help("eval", "--gpus")
    assert "shard" not in words and "one device" in words, words
    result = runner.invoke(app, ["eval", "digits", "--gpus", "2"])
    assert result.exit_code == 2 and "eval runs on one device" in result.stderr


def test_the_help_states_the_space_eval_uses(trained_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 3)
    result = _run("eval", tmp_path, str(digits), "-m", str(trained_run), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["space"] == stated_default("eval", "--space") == "backbone"


def test_a_random_init_floor_is_the_same_on_every_call(tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "0147", 5)
    args = ["eval", str(digits), "-m", "tiny-cnn", "--size", "16", "--gpus", "0", "--json"]
    args += ["--cache-dir", str(tmp_path / "cache")]
    reports = []
    for _ in range(2):  # two processes, as two calls from a shell are
        done = subprocess.run(
            [sys.executable, "-m", "sslcli", *args], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout))
    assert reports[0]["knn_accuracy"] == reports[1]["knn_accuracy"]
    assert reports[0] == reports[1]
    assert "seed 0" in reports[0]["model"]


def test_a_diverged_model_is_an_error_naming_it(trained_run: Path, tmp_path: Path) -> None:
    broken = diverged_copy(trained_run, tmp_path / "diverged")
    digits = copy_digits(tmp_path / "digits", "01", 3)
    result = _run("eval", tmp_path, str(digits), "-m", str(broken), "--json")
    assert result.exit_code == 1 and result.stdout == "", result.output
    said = " ".join(result.stderr.split())
    assert f"run {broken}" in said and "not finite" in said and "diverged" in said, said
