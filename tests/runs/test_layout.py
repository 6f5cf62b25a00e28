"""The run folder's format: every config a run writes carries its version, and a folder written
by another version is refused with one sentence, by the model commands and by --resume."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.checkpoint import CONFIG_FILE, resolve_resume
from sslcli.errors import SSLError
from sslcli.runs.layout import FORMAT_KEY, RUN_FORMAT, check_format
from sslcli.runs.loading import load_model


def _rewrite_format(folder: Path, value: int | None) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    if value is None:
        del config[FORMAT_KEY]
    else:
        config[FORMAT_KEY] = value
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def test_every_config_of_a_run_carries_the_format_version(trained_run: Path) -> None:
    for folder in (trained_run, resolve_resume(trained_run), trained_run / "encoder"):
        assert json.loads((folder / CONFIG_FILE).read_text())[FORMAT_KEY] == RUN_FORMAT


@pytest.mark.parametrize(("value", "written"), [(None, "an older"), (RUN_FORMAT + 1, "a newer")])
def test_a_run_of_another_format_is_refused_by_the_model_commands(
    trained_run: Path, tmp_path: Path, value: int | None, written: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _rewrite_format(resolve_resume(run), value)
    with pytest.raises(SSLError, match=f"written by {written} version of sslcli") as raised:
        load_model(str(run))
    assert raised.value.exit_code == 2


def test_resuming_a_run_of_an_older_format_is_refused_before_training(
    trained_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _rewrite_format(resolve_resume(run), None)
    result = CliRunner().invoke(
        app, ["train-siamese", str(tmp_path / "missing-data"), "--resume", str(run)]
    )
    assert result.exit_code == 2
    assert "older version of sslcli" in result.output
    assert "Traceback" not in result.output


def test_the_current_format_passes() -> None:
    check_format({FORMAT_KEY: RUN_FORMAT}, Path("run"))
