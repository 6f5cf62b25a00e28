"""sslcli sweep: its help and its refusals."""

from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.cli.helpers import option_help

runner = CliRunner()


def test_the_help_says_sweep_runs_on_one_device() -> None:
    words = option_help("sweep", "--gpus")
    assert "shard" not in words and "one device" in words, words
    result = runner.invoke(app, ["sweep", "x.png", "--gallery", "g", "--gpus", "2"])
    assert result.exit_code == 2 and "sweep runs on one device" in result.stderr
