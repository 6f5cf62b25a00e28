"""A run from start to end: resuming with the run's own settings, changing its schedule on
purpose, starting from a trained encoder, and the advice after a divergence."""

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from tests.conftest import copy_digits
from tests.training.test_worker import _metrics, _train

runner = CliRunner()


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return copy_digits(tmp_path / "digits")


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def test_epochs_given_on_resume_extend_the_run_and_say_so(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    run = tmp_path / "run"
    resumed = runner.invoke(app, ["train-siamese", "--resume", str(run), "--epochs", "3"])
    assert resumed.exit_code == 0, resumed.output
    assert "epochs: 1 -> 3" in resumed.stderr
    assert load_checkpoint(resolve_resume(run)).config["step"] == 6
    config = _config(run)
    # everything else is the run's own: the tiny CNN at 16 px, SGD, batch 16
    assert (config["epochs"], config["backbone"], config["size"]) == (3, "tiny-cnn", 16)
    assert (config["optimizer"], config["batch_size"]) == ("sgd", 16)
    # the cosine re-planned over 6 steps: the last step's rate is its value at step 5 of 6
    last = [r for r in _metrics(run) if "lr" in r][-1]
    assert last["step"] == 6
    assert last["lr"] == pytest.approx(0.5 * 16 / 256 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))


def test_batch_size_auto_on_resume_keeps_the_runs_batch(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    run = tmp_path / "run"
    command = ["train-siamese", "--resume", str(run), "--epochs", "2", "--batch-size", "auto"]
    resumed = runner.invoke(app, command)  # on the CPU: auto is the batch its start had
    assert resumed.exit_code == 0, resumed.output
    assert _config(run)["batch_size"] == 16
    assert load_checkpoint(resolve_resume(run)).config["step"] == 4


def test_a_learning_rate_given_on_resume_replaces_the_runs(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    run = tmp_path / "run"
    resumed = runner.invoke(
        app, ["train-siamese", "--resume", str(run), "--epochs", "2", "--lr", "0.05"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert "lr_per_256: 0.5 -> 0.05" in resumed.stderr
    assert _config(run)["lr_per_256"] == 0.05
    rates = {r["step"]: r["lr"] for r in _metrics(run) if "lr" in r}
    # the last of 4 steps (0-based 3, no warm-up) on the cosine from 0.05 x 16 / 256
    assert rates[4] == pytest.approx(0.05 * 16 / 256 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))
    assert rates[2] == pytest.approx(0.5 * 16 / 256 * 0.5 * (1 + math.cos(math.pi * 1 / 2)))


def test_a_resume_cannot_go_back_before_its_step(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "2").exit_code == 0
    result = runner.invoke(
        app, ["train-siamese", "--resume", str(tmp_path / "run"), "--epochs", "1"]
    )
    assert result.exit_code == 2
    assert "past the 2 steps" in result.stderr and "Traceback" not in result.output


def test_what_shapes_the_model_cannot_change_on_resume(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    result = runner.invoke(
        app, ["train-siamese", "--resume", str(tmp_path / "run"), "--size", "20"]
    )
    assert result.exit_code == 2 and "mismatched checkpoint: size" in result.stderr


def test_a_latent_run_resumes_with_its_own_command(digits: Path, tmp_path: Path) -> None:
    latent = _train(digits, tmp_path, "run", "--epochs", "1", "--method", "latent")
    assert latent.exit_code == 0, latent.output
    result = runner.invoke(app, ["train-siamese", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"sslcli train-latent --resume {tmp_path / 'run'}" in result.stderr


def test_init_starts_a_new_run_from_a_trained_encoder(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "first", "--epochs", "1").exit_code == 0
    first = load_checkpoint(tmp_path / "first" / "encoder").weights
    # lr 0: the backbone's parameters stay as they started
    second = _train(
        digits, tmp_path, "second", "--epochs", "1", "--lr", "0", "--init", str(tmp_path / "first")
    )
    assert second.exit_code == 0, second.output
    assert "encoder from" in second.stderr
    started = load_checkpoint(tmp_path / "second" / "encoder").weights
    parameters = [name for name in first if "running_" not in name and "num_batches" not in name]
    assert parameters
    for name in parameters:
        torch.testing.assert_close(started[name], first[name], rtol=0, atol=0, msg=name)
    wrong = _train(
        digits, tmp_path, "third", "--init", str(tmp_path / "first"), "--backbone", "small-cnn"
    )
    assert wrong.exit_code == 2 and "does not fit --init" in wrong.stderr


def test_a_run_that_diverges_at_once_says_how_to_start_again(digits: Path, tmp_path: Path) -> None:
    result = _train(digits, tmp_path, "nan", "--lr", "1e30", "--checkpoint-every", "1")
    assert result.exit_code == 1
    assert "the loss became" in result.stderr
    assert "no checkpoint was written before it" in result.stderr
    assert "start again with a lower learning rate, e.g. --lr 1e+29" in result.stderr
    # nothing in the folder blocks the advice: the same --out takes the new run
    again = _train(digits, tmp_path, "nan", "--epochs", "1")
    assert again.exit_code == 0, again.output


def test_a_full_disk_at_a_checkpoint_is_one_sentence_and_keeps_the_last_one(
    digits: Path, tmp_path: Path, small_disk
) -> None:
    disk = small_disk(2900)  # room for two checkpoints of 1.1 MB, not for a third beside them
    options = ("--epochs", "200", "--checkpoint-every", "1", "--cache-dir", str(tmp_path / "c"))
    result = runner.invoke(
        app, ["train-siamese", str(digits), *_options_on(disk / "run"), *options]
    )
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    message = " ".join(result.stderr.split())
    assert f"disk full at {disk / 'run'}" in message
    kept = load_checkpoint(resolve_resume(disk / "run"))  # the last one is whole
    assert f"last checkpoint step {kept.config['step']}" in message
    assert f"then resume from {disk / 'run'}" in message


def test_a_damaged_checkpoint_on_resume_is_one_sentence(digits: Path, tmp_path: Path) -> None:
    assert _train(digits, tmp_path, "run", "--epochs", "1").exit_code == 0
    weights = resolve_resume(tmp_path / "run") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = runner.invoke(
        app, ["train-siamese", "--resume", str(tmp_path / "run"), "--epochs", "2"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{weights} is damaged" in " ".join(result.stderr.split())


def _options_on(out: Path) -> list[str]:
    return [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--gpus", "0",
        "--optimizer", "sgd", "--lr", "0.5", "--projector-hidden-dim", "64",
        "--projector-dim", "32", "--out", str(out),
    ]  # fmt: skip


def test_threads_sets_the_cpu_threads_each_process_trains_with(
    digits: Path, tmp_path: Path
) -> None:
    for threads, procs in ((1, "1"), (2, "2")):
        result = _train(digits, tmp_path, f"t{threads}", "--epochs", "1", "--threads",
                        str(threads), "--cpu-procs", procs)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert (
            json.loads((tmp_path / f"t{threads}" / "result.json").read_text())["threads"] == threads
        )
    refused = _train(digits, tmp_path, "t0", "--threads", "0")
    assert refused.exit_code == 2 and "--threads must be 1 or more" in refused.stderr
    assert not (tmp_path / "t0").exists()  # refused before anything is written
