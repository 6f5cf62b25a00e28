import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "sample_data"


@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA


def copy_digits(folder: Path, classes: str = "0147", per_class: int = 8) -> Path:
    """Real digits from sample_data, ``per_class`` of each of ``classes``, in class folders."""
    for label in classes:
        (folder / label).mkdir(parents=True)
        for path in sorted((SAMPLE_DATA / "digits" / label).glob("*.png"))[:per_class]:
            shutil.copy(path, folder / label / path.name)
    return folder


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train-siamese run (SimCLR, tiny CNN, 16 px) on 32 real digits, trained once per session."""
    from typer.testing import CliRunner

    from sslcli.cli.app import app

    work = tmp_path_factory.mktemp("trained")
    digits = copy_digits(work / "digits")
    run = work / "run"
    options = [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "3",
        "--gpus", "0", "--cache-dir", str(work / "cache"), "--out", str(run),
        "--optimizer", "sgd", "--lr", "0.5", "--projector-hidden-dim", "64",
        "--projector-dim", "32",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["train-siamese", str(digits), *options])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(kib)``: a folder on a file system of that size (a tmpfs), to fill up.

    Mounting needs root (as in CI); elsewhere the test is skipped, saying why."""
    mounted: list[Path] = []

    def make(kib: int) -> Path:
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)]
        if subprocess.run(command, capture_output=True).returncode != 0:
            pytest.skip("cannot mount a small tmpfs here (needs root)")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="session")
def latent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train-latent run (online target, tiny CNN, 16 px) on 32 real digits, once a session."""
    from typer.testing import CliRunner

    from sslcli.cli.app import app

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


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """Commands run in this process with --threads change torch's thread count for the rest of
    the process; a later test comparing against a subprocess (torch's default) would then
    compare different summation orders."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
