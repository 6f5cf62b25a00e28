import json
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from sslcli import __version__
from sslcli.cli.app import app

runner = CliRunner()
COMMANDS = [
    "mask-predict", "train-mlm", "augment", "train-siamese", "train-latent", "sweep", "energy",
    "embed", "eval", "models", "export", "pack",
]  # fmt: skip


def test_help_lists_every_command_with_a_description() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_defaults_written_in_help_texts_are_shown(name: str) -> None:
    # rich reads an unescaped "[default: x]" as a style tag and drops it from the help
    command = typer.main.get_command(app).commands[name]
    shown = " ".join(
        re.sub(
            "[│╭╮╰╯─]", " ", runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
        ).split()
    )
    for param in command.params:
        for written in re.findall(r"\\?(\[default:[^\]]*\])", param.help or ""):
            assert " ".join(written.split()) in shown, (param.name, written)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"sslcli {__version__}"


def test_models_lists_the_registries_as_json() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    listing = json.loads(result.stdout)
    assert {entry["name"] for entry in listing["backbones"]} >= {"resnet18", "resnet50", "tiny-cnn"}
    text_models = [entry["name"] for entry in listing["text_models"]]
    assert text_models[0] == "sslcli-minilm-mlm"
    assert {"bert", "roberta", "distilbert"} <= set(text_models)
    methods = [entry["name"] for entry in listing["ssl_methods"]]
    assert methods == [
        "simclr",
        "barlow",
        "byol",
        "moco",
        "simsiam",
        "vicreg",
        "dino",
        "ibot",
        "lejepa",
        "distill",
        "latent",
        "masked-latent",
        "mae",
    ]
    presets = {entry["name"] for entry in listing["augmentation_presets"]}
    assert presets == {"simclr", "byol", "vicreg", "moco-v2", "dino", "minimal", "digits"}


def test_models_table_goes_to_stderr() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "resnet18" in result.stderr and "bert-base-uncased" in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["trian-siamese"])
    assert result.exit_code == 2


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys; from sslcli.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "names = ('torch', 'torchvision', 'transformers', 'numpy')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('heavy:' + ','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "heavy:"


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sslcli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"sslcli {__version__}"


def test_an_error_naming_a_path_with_brackets_shows_it_as_typed(tmp_path) -> None:
    """rich would read "[bold]" in a file name as a style tag and drop it from the message."""
    folder = tmp_path / "run[bold]s"
    result = runner.invoke(app, ["export", str(folder), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert f"no such run folder: {folder}" in " ".join(result.output.split())
