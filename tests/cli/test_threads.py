"""--threads on the commands that compute: the command computes with that many."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.conftest import copy_digits
from tests.text.tiny_models import SAMPLE_TEXT, write_bert_tokenizer

runner = CliRunner()


@pytest.fixture(autouse=True)
def _keep_torchs_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _json(tmp_path: Path, *args: str) -> dict:
    cache = ["--cache-dir", str(tmp_path / "cache"), "--gpus", "0", "--json"]
    result = runner.invoke(app, [*args, *cache])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_each_command_computes_with_the_threads_asked_for(
    trained_run: Path, latent_run: Path, tmp_path: Path
) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 3)
    image = digits / "0" / "0_000.png"
    model = ["-m", str(trained_run)]
    for threads in ("1", "3"):
        out = tmp_path / f"e{threads}.npy"
        commands = [
            ["energy", str(image), str(image), *model],
            ["eval", str(digits), *model, "--k", "2"],
            ["embed", str(digits), *model, "-o", str(out)],
            ["sweep", str(image), "--gallery", str(digits), "-m", str(latent_run)],
        ]
        for command in commands:
            report = _json(tmp_path, *command, "--threads", threads)
            assert report["threads"] == int(threads), command


def test_embed_processes_compute_with_the_threads_asked_for(
    trained_run: Path, tmp_path: Path
) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 2)
    args = ["embed", str(digits), "-m", str(trained_run), "--cpu-procs", "2"]
    # without --threads each of 2 processes takes its share of the cores; with it, the number
    shared = _json(tmp_path, *args, "-o", str(tmp_path / "a.npy"))
    assert shared["threads"] == max(1, (os.cpu_count() or 1) // 2)
    asked = _json(tmp_path, *args, "-o", str(tmp_path / "b.npy"), "--threads", "3")
    assert asked["threads"] == 3


def test_augment_and_train_mlm_compute_with_the_threads_asked_for(tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "0", 2)
    tokenizer = write_bert_tokenizer(tmp_path / "tokenizer")
    for threads in ("1", "3"):
        augment = ["augment", str(digits), "-o", str(tmp_path / f"views{threads}"), "--gpus", "0"]
        mlm = ["train-mlm", str(SAMPLE_TEXT), "--init", "tiny", "--tokenizer", str(tokenizer)]
        mlm += ["--steps", "1", "--seq-len", "16", "--batch-size", "2", "--gpus", "0"]
        mlm += ["--out", str(tmp_path / f"mlm{threads}")]
        for command in (augment, mlm):
            result = runner.invoke(app, [*command, "--threads", threads, "--json"])
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["threads"] == int(threads), command


@pytest.mark.parametrize("command", ["energy", "eval", "embed", "sweep", "augment", "train-mlm"])
def test_no_thread_is_a_usage_error(command: str, tmp_path: Path) -> None:
    args = {"energy": ["a.png", "b.png"], "eval": ["d"], "embed": ["d", "-o", "e.npy"]}
    args["sweep"] = ["x.png", "--gallery", "g"]
    args["augment"] = ["d", "-o", "v"]
    args["train-mlm"] = ["corpus.txt", "--steps", "1"]
    result = runner.invoke(app, [command, *args[command], "--threads", "0"])
    assert result.exit_code == 2 and "--threads must be 1 or more" in result.stderr, result.output
