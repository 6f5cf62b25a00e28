from pathlib import Path

import pytest
from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.conftest import copy_digits


@pytest.fixture(scope="session")
def latent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train-latent run (online target, tiny CNN, 16 px) on 32 real digits, once a session."""
    work = tmp_path_factory.mktemp("latent")
    digits = copy_digits(work / "digits")
    options = [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "2",
        "--gpus", "0", "--cache-dir", str(work / "cache"), "--out", str(work / "run"),
        "--optimizer", "sgd", "--lr", "0.5", "--projector-hidden-dim", "64",
        "--projector-dim", "32", "--latent-dim", "4",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["train-latent", str(digits), *options])
    assert result.exit_code == 0, result.output
    return work / "run"
