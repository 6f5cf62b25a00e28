"""train-siamese end to end on real digits: distributed equivalence, resume, faults, outputs."""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.data.cache import decode_once
from sslcli.data.folder import scan_image_folder
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from sslcli.engine.run_lock import run_folder_lock
from sslcli.eval.knn import leave_one_out_knn_accuracy
from tests.conftest import copy_digits

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """32 real digits, 8 of each of 4 classes."""
    return copy_digits(tmp_path / "digits")


def _options(tmp_path: Path, out: str, *extra: str) -> list[str]:
    return [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "2",
        "--gpus", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out),
        "--optimizer", "sgd", "--lr", "0.5", "--knn-every", "1", *extra,
    ]  # fmt: skip


def _train(digits: Path, tmp_path: Path, out: str, *extra: str) -> object:
    """train-siamese, or train-latent when ``extra`` holds ``--method latent``."""
    command = "train-siamese"
    pairs = list(itertools.pairwise(extra))
    if ("--method", "latent") in pairs:
        at = pairs.index(("--method", "latent"))
        command, extra = "train-latent", extra[:at] + extra[at + 2 :]
    return runner.invoke(app, [command, str(digits), *_options(tmp_path, out, *extra)])


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(resolve_resume(run)).weights


def _has_trained(metrics: Path) -> bool:
    """A step's record is in ``metrics.jsonl`` (the floors are logged before the first step)."""
    return metrics.exists() and '"loss"' in metrics.read_text()


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_writes_config_metrics_checkpoints_and_a_plain_encoder(
    digits: Path, tmp_path: Path
) -> None:
    result = _train(
        digits, tmp_path, "run", "--json", "--crop-scale", "0.3,1", "--flip-prob", "0",
        "--rotation", "15",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    run = tmp_path / "run"
    assert report["step"] == 4 and not report["interrupted"] and 0 <= report["knn_accuracy"] <= 1
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 16 and config["lr"] == 0.5 * 16 / 256 and config["small_images"]
    assert config["view_changes"] == {"crop_scale": [0.3, 1.0], "flip_prob": 0.0, "rotation": 15.0}
    steps = [m for m in _metrics(run) if "loss" in m]
    assert [m["step"] for m in steps] == [2, 4] and all("embedding_std" in m for m in steps)
    assert [m["epoch"] for m in _metrics(run) if "knn_accuracy" in m] == [1, 2]
    # the encoder loads into a plain module without sslcli's help
    from sslcli.models.tiny_cnn import TinyCNN

    encoder = TinyCNN()
    encoder.load_state_dict(load_file(run / "encoder" / "model.safetensors"))
    assert json.loads((run / "encoder" / "config.json").read_text())["out_dim"] == 128
    assert report["skipped"] == []
    with Image.open(run / "views.png") as sheet:  # 16 rows: the stored digit and its 2 views
        assert sheet.size == (4 + 3 * 132, 4 + 16 * 132)


def test_images_that_cannot_be_used_are_listed_at_the_start_and_in_the_result(
    digits: Path, tmp_path: Path
) -> None:
    (digits / "0" / "empty.png").write_bytes(b"")
    (digits / "1" / "truncated.png").write_bytes(
        (digits / "1").glob("*.png").__next__().read_bytes()[:60]
    )
    result = _train(digits, tmp_path, "run", "--json", "--epochs", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["skipped"]) == 2
    assert "empty.png is empty (0 bytes)" in report["skipped"][0]
    assert "truncated.png" in report["skipped"][1]
    assert "skipped 2 image(s) that could not be used" in result.stderr


SMALL_HEADS = ("--projector-hidden-dim", "64", "--projector-dim", "64")


@pytest.mark.parametrize(
    ("method", "atol"),
    [
        (("--method", "simclr"), 2e-6),
        (("--method", "vicreg", *SMALL_HEADS), 2e-6),
        (("--method", "simsiam", *SMALL_HEADS), 2e-6),
        (("--method", "byol", *SMALL_HEADS), 2e-6),
        (("--method", "moco", *SMALL_HEADS), 2e-6),
        # Barlow's large gradients: 1 process with 1 vs 2 threads already differs by 3e-5
        (("--method", "barlow", *SMALL_HEADS), 1e-4),
        (("--method", "latent", *SMALL_HEADS, "--z-lr", "20"), 2e-6),
        (("--method", "latent", *SMALL_HEADS, "--z-lr", "20", "--target", "ema"), 2e-6),
    ],
)
def test_two_processes_equal_one_process_with_the_same_global_batch(
    digits: Path, tmp_path: Path, method: tuple[str, ...], atol: float
) -> None:
    # one step (global batch 32 = 2 x 16): after more steps float noise grows chaotically.
    # The digits stored at their own 20 px: at 19 px, seed 0's batch holds a view whose
    # rounding noise grows to 1e-4 in simclr's first conv (1 vs 2 threads in one process
    # agree to 5e-7 there, and seeds 1-3 agree to 2e-7 across processes).
    one_step = ("--batch-size", "32", "--epochs", "1", "--store-size", "20", *method)
    assert _train(digits, tmp_path, "one", *one_step).exit_code == 0
    two = _train(digits, tmp_path, "two", *one_step, "--cpu-procs", "2")
    assert two.exit_code == 0, two.output
    for a, b in zip(_metrics(tmp_path / "one"), _metrics(tmp_path / "two"), strict=True):
        for name in ("loss", "knn_accuracy"):
            if name in a:
                assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-5), name
    one_weights, two_weights = _final_weights(tmp_path / "one"), _final_weights(tmp_path / "two")
    for name, tensor in one_weights.items():
        # float rounding only: a rank-local statistic or a gather without gradients moves the
        # weights by orders of magnitude more
        torch.testing.assert_close(two_weights[name], tensor, rtol=1e-5, atol=atol, msg=name)


def test_torchrun_on_cpu_equals_spawned_processes(digits: Path, tmp_path: Path) -> None:
    one_step = ("--batch-size", "32", "--epochs", "1")
    assert _train(digits, tmp_path, "spawned", *one_step, "--cpu-procs", "2").exit_code == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-port", str(port), "-m", "sslcli", "train-siamese", str(digits)]
    subprocess.run(
        [*command, *_options(tmp_path, "torchrun", *one_step)],
        check=True, cwd=REPO, capture_output=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2))},
    )  # fmt: skip
    spawned, launched = _final_weights(tmp_path / "spawned"), _final_weights(tmp_path / "torchrun")
    for name, tensor in spawned.items():
        torch.testing.assert_close(launched[name], tensor, msg=name)


def test_sigkill_then_resume_equals_an_uninterrupted_run(digits: Path, tmp_path: Path) -> None:
    long = ("--epochs", "30", "--checkpoint-every", "3")
    assert _train(digits, tmp_path, "straight", *long).exit_code == 0
    command = [sys.executable, "-m", "sslcli", "train-siamese", str(digits)]
    command += _options(tmp_path, "killed", *long)
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not latest.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = load_checkpoint(resolve_resume(tmp_path / "killed")).config["step"]
    assert stopped_at < 60, "the kill should land mid-run"
    # as the user at 2 a.m. would: the run's folder alone, every setting from the run
    resumed = runner.invoke(app, ["train-siamese", "--resume", str(tmp_path / "killed")])
    assert resumed.exit_code == 0, resumed.output
    straight, again = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "killed")
    for name, tensor in straight.items():
        torch.testing.assert_close(again[name], tensor, msg=name)


def test_sigterm_finishes_the_step_saves_and_exits_cleanly(digits: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sslcli", "train-siamese", str(digits)]
    command += _options(tmp_path, "stopped", "--epochs", "200")
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "stopped" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not _has_trained(metrics) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0
    step = load_checkpoint(resolve_resume(tmp_path / "stopped")).config["step"]
    assert 2 <= step < 400
    # the command it prints continues the run as printed
    printed = " ".join(stderr.split()).split("continue with: ")[1].split()
    assert printed[:2] == ["sslcli", "train-siamese"]
    epochs = step // 2 + 2  # a few steps more than done (2 steps an epoch), to keep it short
    continued = runner.invoke(app, [*printed[1:], "--epochs", str(epochs)])
    assert continued.exit_code == 0, continued.output
    assert load_checkpoint(resolve_resume(tmp_path / "stopped")).config["step"] == 2 * epochs


def test_sigterm_to_a_multi_process_run_checkpoints_and_exits_cleanly(
    digits: Path, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "sslcli", "train-siamese", str(digits)]
    command += _options(tmp_path, "stopped", "--epochs", "200", "--cpu-procs", "2")
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "stopped" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not _has_trained(metrics) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # to the parent only, as a job scheduler might
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "--resume" in stderr
    assert 2 <= load_checkpoint(resolve_resume(tmp_path / "stopped")).config["step"] < 400


def test_resuming_into_another_run_folder_is_refused(digits: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert _train(digits, tmp_path, name, "--epochs", "1").exit_code == 0
    result = _train(digits, tmp_path, "b", "--epochs", "1", "--resume", str(tmp_path / "a"))
    assert result.exit_code == 2 and "already holds a run" in result.stderr


def test_resuming_from_an_encoder_export_is_a_clear_error(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    encoder = tmp_path / "run" / "encoder"
    result = _train(digits, tmp_path, "other", "--epochs", "1", "--resume", str(encoder))
    assert result.exit_code == 2 and "not a training checkpoint" in result.stderr


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--batch-size", "64"), "fewer than --batch-size 64"),
        (("--batch-size", "15", "--cpu-procs", "2"), "divisible by the 2 processes"),
        (("--method", "simclrr"), "did you mean simclr"),
        (("--backbone", "resnet19"), "did you mean resnet18"),
        (("--gpus", "1"), "asked for 1 GPUs but found 0"),
        (("--knn-every", "0"), "--knn-every must be 1 or more"),
        (("--temperature", "0"), "--temperature must be above 0"),
        (("--method", "vicreg", "--temperature", "0.2"), "--temperature does not apply to vicreg"),
    ],
)
def test_bad_settings_are_clear_errors(
    digits: Path, tmp_path: Path, extra: tuple, says: str
) -> None:
    if ("--gpus" in extra or "auto" in extra) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = _train(digits, tmp_path, "bad", *extra)
    assert result.exit_code == 2
    assert says in result.stderr


@pytest.mark.parametrize(
    ("batch", "says"),
    [
        ("auto", "fits in GPU memory, and this run has no GPU"),
        ("lots", "--batch-size takes a number or auto, got 'lots'"),
    ],
)
def test_a_batch_size_that_is_not_a_number_or_auto_on_a_gpu_is_refused_before_the_run(
    digits: Path, tmp_path: Path, batch: str, says: str
) -> None:
    if batch == "auto" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = _train(digits, tmp_path, "bad", "--batch-size", batch)
    assert result.exit_code == 2 and says in result.stderr
    assert not (tmp_path / "bad").exists()


def test_an_existing_run_is_never_overwritten(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    again = _train(digits, tmp_path, "run", "--epochs", "1")
    assert again.exit_code == 2 and "already holds a run" in again.stderr


def test_a_second_run_into_a_folder_in_use_is_refused(digits: Path, tmp_path: Path) -> None:
    # before its first checkpoint a run's folder looks unused: only the lock tells
    command = [sys.executable, "-m", "sslcli", "train-siamese", str(digits)]
    command += _options(tmp_path, "busy", "--epochs", "500")
    first = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        config = tmp_path / "busy" / "config.json"  # written under the lock
        deadline = time.monotonic() + 120
        while not config.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = _train(digits, tmp_path, "busy", "--epochs", "1")
        assert first.poll() is None, "the first run should still be training"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.exit_code == 2
    assert "another sslcli run is training in" in second.stderr and "Traceback" not in second.output
    with run_folder_lock(tmp_path / "busy"):  # the lock went with the killed process
        pass


def test_resume_from_a_mismatched_run_is_refused(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    result = _train(
        digits, tmp_path, "run", "--epochs", "1", "--size", "20", "--resume", str(tmp_path / "run")
    )
    assert result.exit_code == 2 and "mismatched checkpoint: size" in result.stderr


def test_the_result_is_read_against_its_floors_and_the_runs_mean_speed(
    digits: Path, tmp_path: Path
) -> None:
    arguments = ["train-siamese", str(digits), *_options(tmp_path, "run")]
    result = runner.invoke(app, arguments, env={"COLUMNS": "200"})  # one line per table row
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "result.json").read_text())
    # the floors: kNN on the raw pixels, and on the encoder before its first step
    cached = decode_once(scan_image_folder(digits).paths, 16, tmp_path / "cache")
    labels = torch.tensor(scan_image_folder(digits).labels)
    raw = torch.from_numpy(np.array(cached.pixels, dtype=np.float32)).reshape(32, -1)
    assert report["knn_raw_pixels"] == leave_one_out_knn_accuracy(raw, labels)
    floors = [m for m in _metrics(tmp_path / "run") if "knn_random_init" in m]
    assert [m["step"] for m in floors] == [0] and 0 <= report["knn_random_init"] <= 1
    words = " ".join(result.stderr.split())
    assert f"raw pixels ({report['knn_raw_pixels']:.3f})" in words
    assert f"the untrained encoder ({report['knn_random_init']:.3f})" in words
    # the speed is the run's mean, not its last window's
    assert report["images_seen"] == 4 * 16
    assert report["images_per_s"] == pytest.approx(report["images_seen"] / report["train_seconds"])
