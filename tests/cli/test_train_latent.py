"""train-latent --help: its words are the method's real defaults."""

import re

from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.cli.test_models import latent_truth

runner = CliRunner()


def _help(command: str) -> str:
    output = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


def test_the_help_states_the_real_target_and_expander() -> None:
    truth = latent_truth()
    shown = _help("train-latent")
    assert f"by default (--target {truth['target']})" in shown, shown
    assert f"expander {truth['expander']}" in shown, shown
    assert f"[default: {truth['target']}]" in shown  # the --target option's own help
    assert "EMA target embedding" not in shown
