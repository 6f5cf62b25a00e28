"""Online evaluation while training: the linear probe (``--online-probe``) and ``--eval-dir``."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sslcli.data.cache import decode_once
from sslcli.data.folder import scan_image_folder
from sslcli.engine.checkpoint import STATE_FILE, resolve_resume, step_folder
from sslcli.engine.runtime import Runtime
from sslcli.eval.features import extract_features
from sslcli.eval.knn import knn_accuracy
from sslcli.models.tiny_cnn import TinyCNN
from tests.conftest import copy_digits
from tests.training.test_worker import _metrics, _train


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return copy_digits(tmp_path / "digits")


def _probe_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint / STATE_FILE, weights_only=True)["probe"]["weights"]


def test_the_probe_learns_the_classes_and_reports_its_accuracy(
    digits: Path, tmp_path: Path
) -> None:
    options = ("--online-probe", "--epochs", "30", "--knn-every", "10")
    result = _train(digits, tmp_path, "run", *options)
    assert result.exit_code == 0, result.output
    records = _metrics(tmp_path / "run")
    online = [r["probe_train_accuracy"] for r in records if "probe_train_accuracy" in r]
    assert len(online) == 30 and all(0 <= a <= 1 for a in online)
    assert np.mean(online[-5:]) > np.mean(online[:5])
    evaluated = [r for r in records if "probe_accuracy" in r]
    assert [r["epoch"] for r in evaluated] == [10, 20, 30]
    assert evaluated[-1]["probe_accuracy"] > 0.5  # 4 classes: chance is 0.25
    assert "probe accuracy" in result.output


def test_the_probe_on_two_processes_equals_one_process(digits: Path, tmp_path: Path) -> None:
    one_step = ("--batch-size", "32", "--epochs", "1", "--online-probe")
    assert _train(digits, tmp_path, "one", *one_step).exit_code == 0
    two = _train(digits, tmp_path, "two", *one_step, "--cpu-procs", "2")
    assert two.exit_code == 0, two.output
    for a, b in zip(_metrics(tmp_path / "one"), _metrics(tmp_path / "two"), strict=True):
        for name in ("probe_loss", "probe_train_accuracy", "probe_accuracy"):
            if name in a:
                assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-6), name
    one = _probe_state(resolve_resume(tmp_path / "one"))
    two_state = _probe_state(resolve_resume(tmp_path / "two"))
    assert one["linear.weight"].abs().sum() > 0, "the probe should have moved"
    for name, tensor in one.items():
        torch.testing.assert_close(two_state[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_a_resumed_probe_equals_an_uninterrupted_one(digits: Path, tmp_path: Path) -> None:
    options = ("--online-probe", "--epochs", "3", "--checkpoint-every", "3")
    assert _train(digits, tmp_path, "straight", *options).exit_code == 0
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    middle = step_folder(tmp_path / "resumed", 3)
    for later in (tmp_path / "resumed" / "checkpoints").glob("step-*"):
        if later != middle:
            shutil.rmtree(later)
    resumed = _train(digits, tmp_path, "resumed", *options, "--resume", str(middle))
    assert resumed.exit_code == 0, resumed.output
    straight = _probe_state(step_folder(tmp_path / "straight", 6))
    again = _probe_state(step_folder(tmp_path / "resumed", 6))
    for name, tensor in straight.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=0, msg=name)


def test_eval_dir_knn_is_the_encoders_knn_against_the_training_images(
    digits: Path, tmp_path: Path
) -> None:
    held_out = tmp_path / "held-out"
    copy_digits(tmp_path / "more", per_class=12)
    for label in "0147":  # 4 other images of each class than the 8 trained on
        (held_out / label).mkdir(parents=True)
        for path in sorted((tmp_path / "more" / label).glob("*.png"))[8:]:
            shutil.copy(path, held_out / label / path.name)
    result = _train(digits, tmp_path, "run", "--eval-dir", str(held_out))
    assert result.exit_code == 0, result.output
    logged = [r["knn_accuracy"] for r in _metrics(tmp_path / "run") if "knn_accuracy" in r][-1]

    encoder = TinyCNN()
    encoder.load_state_dict(load_file(tmp_path / "run" / "encoder" / "model.safetensors"))
    runtime = Runtime(torch.device("cpu"), "fp32", seed=0)
    features, labels = [], []
    for folder in (digits, held_out):
        scanned = scan_image_folder(folder)
        decoded = decode_once(scanned.paths, 16, tmp_path / "cache")
        features.append(extract_features(encoder, decoded.pixels, runtime))
        labels.append(torch.tensor([scanned.labels[i] for i in decoded.kept]))
    assert logged == pytest.approx(knn_accuracy(features[0], labels[0], features[1], labels[1]))


def test_eval_dir_gives_unlabelled_training_a_knn_accuracy(digits: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in digits.rglob("*.png"):
        shutil.copy(path, flat / f"{path.parent.name}-{path.name}")
    result = _train(flat, tmp_path, "run", "--eval-dir", str(digits), "--json")
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in _metrics(tmp_path / "run") if "knn_accuracy" in r] == [1, 2]


@pytest.mark.parametrize(
    ("layout", "extra", "message"),
    [
        ("flat", ("--online-probe",), "--online-probe needs labels"),
        ("labelled", ("--eval-dir", "{flat}"), "has no class sub-folders"),
        ("labelled", ("--eval-dir", "{other}"), "classes the training folder lacks: 9"),
    ],
)
def test_probe_and_eval_dir_mistakes_are_clear_errors(
    tmp_path: Path, layout: str, extra: tuple[str, ...], message: str
) -> None:
    labelled = copy_digits(tmp_path / "labelled")
    other = copy_digits(tmp_path / "other", classes="019")
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in labelled.rglob("*.png"):
        shutil.copy(path, flat / f"{path.parent.name}-{path.name}")
    folders = {"flat": str(flat), "other": str(other)}
    data = flat if layout == "flat" else labelled
    result = _train(data, tmp_path, "run", *(e.format(**folders) for e in extra))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
