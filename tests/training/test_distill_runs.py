"""Distillation end to end: a teacher trained by sslcli itself, a student that learns to
predict its features, a checkpoint without the teacher, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD, normalize
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from sslcli.runs.loading import load_model
from tests.conftest import copy_digits

runner = CliRunner()


def _options(tmp_path: Path, out: str, *extra: str) -> list[str]:
    return [
        "--size", "16", "--batch-size", "16", "--gpus", "0",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out), "--json", *extra,
    ]  # fmt: skip


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return copy_digits(tmp_path / "digits")


def test_a_student_learns_to_predict_its_teachers_features(digits: Path, tmp_path: Path) -> None:
    teacher_options = _options(tmp_path, "teacher", "--backbone", "tiny-cnn", "--epochs", "2")
    taught = runner.invoke(app, ["train-siamese", str(digits), *teacher_options])
    assert taught.exit_code == 0, taught.output
    student = _options(
        tmp_path, "student", "--method", "distill", "--teacher", str(tmp_path / "teacher"),
        "--backbone", "small-cnn", "--epochs", "40", "--optimizer", "adamw", "--lr", "0.01",
    )  # fmt: skip
    result = runner.invoke(app, ["train-siamese", str(digits), *student])
    assert result.exit_code == 0, result.output
    run = tmp_path / "student"
    losses = [m["loss"] for m in map(json.loads, (run / "metrics.jsonl").open()) if "loss" in m]
    assert losses[-1] < 0.5 * losses[0], losses
    # the checkpoint holds the student alone, and records its teacher
    final = load_checkpoint(resolve_resume(run))
    assert all(not key.startswith("_teacher") for key in final.weights)
    assert final.config["method_options"]["teacher"] == str((tmp_path / "teacher").resolve())
    assert final.config["method_options"]["teacher_dim"] == 128  # the tiny CNN's features
    # on its training digits, unaugmented, each dimension of the student's projection
    # follows the teacher's feature: their correlation over the images, whatever the
    # standardisation (measured 0.52; an untrained student with a random projection 0.03)
    teacher = load_model(str(tmp_path / "teacher")).backbone.eval()
    distilled = load_model(str(run))
    assert distilled.projector is not None
    training = sorted(digits.glob("*/*.png"))
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((16, 16))) for p in training])
    images = normalize(
        torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255, IMAGENET_MEAN, IMAGENET_STD
    )
    with torch.no_grad():
        target = teacher(images)
        predicted = distilled.projector(distilled.backbone.eval()(images))
    assert _correlation(predicted, target) > 0.35


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """The mean over dimensions of the correlation of a[:, d] and b[:, d] over the rows."""
    a, b = a - a.mean(dim=0), b - b.mean(dim=0)
    return float(((a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp(min=1e-12)).mean())


def test_distillation_without_a_teacher_or_with_a_missing_one_is_refused(
    digits: Path, tmp_path: Path
) -> None:
    refused = runner.invoke(
        app, ["train-siamese", str(digits), *_options(tmp_path, "a", "--method", "distill")]
    )
    assert refused.exit_code == 2
    assert "give --teacher RUN_OR_FOLDER" in refused.stderr
    missing = _options(tmp_path, "b", "--method", "distill", "--teacher", "./runs/none")
    refused = runner.invoke(app, ["train-siamese", str(digits), *missing])
    assert refused.exit_code == 2 and "no such teacher: ./runs/none" in refused.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_teacher_that_is_neither_a_folder_nor_a_cached_hub_model_is_refused_at_once(
    digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runs/none`` without a ``runs/`` folder reads as a hub id; offline (HF_HUB_OFFLINE,
    as in the tests) and not in the local cache, it cannot be loaded: one sentence, before
    the store is built or a process starts."""
    monkeypatch.chdir(tmp_path)
    options = _options(tmp_path, "c", "--method", "distill", "--teacher", "runs/none")
    refused = runner.invoke(app, ["train-siamese", str(digits), *options])
    assert refused.exit_code == 2, refused.output
    assert "no such teacher: runs/none" in " ".join(refused.stderr.split())
    assert not (tmp_path / "c").exists()
