"""--compile: the backbone runs through torch.compile and trains as the eager one does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from tests.conftest import copy_digits

runner = CliRunner()


@pytest.mark.slow  # compiling takes most of a minute on 2 CPU cores
def test_a_compiled_run_trains_like_an_eager_one(tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits")
    runs = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        options = [
            "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "1",
            "--gpus", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / name),
            "--optimizer", "sgd", "--lr", "0.1", *extra,
        ]  # fmt: skip
        result = runner.invoke(app, ["train-siamese", str(digits), *options])
        assert result.exit_code == 0, result.output
        runs[name] = load_checkpoint(resolve_resume(tmp_path / name))
    assert runs["compiled"].config["compile"] is True
    # the same parameter names (no "_orig_mod."), so encoders and resume are unchanged
    assert set(runs["compiled"].weights) == set(runs["eager"].weights)
    for key, tensor in runs["eager"].weights.items():
        torch.testing.assert_close(runs["compiled"].weights[key], tensor, rtol=1e-3, atol=1e-4)
    losses = {
        name: [json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").open()
               if "loss" in json.loads(line)]
        for name in runs
    }  # fmt: skip
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-4)
