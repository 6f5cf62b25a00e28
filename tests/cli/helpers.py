"""What a command's --help says about one option, as the user reads it."""

import re
import shutil
from pathlib import Path

import typer

from sslcli.cli.app import app


def option_help(command: str, option: str) -> str:
    """The help text of ``option`` of ``command``, with the escapes rich removes removed."""
    (param,) = [p for p in typer.main.get_command(app).commands[command].params if option in p.opts]
    return (param.help or "").replace("\\[", "[")


def stated_default(command: str, option: str) -> str:
    """What the option's help says its default is: ``[default: X]`` gives X's first word."""
    found = re.search(r"\[default: (\w+)", option_help(command, option))
    assert found, option_help(command, option)
    return found.group(1)


def diverged_copy(run: Path, copy: Path, prefix: str = "") -> Path:
    """A copy of ``run`` whose newest checkpoint's weights (those named ``prefix...``) are nan,
    as a run that diverged leaves them."""
    import torch
    from safetensors.torch import load_file, save_file

    from sslcli.engine.checkpoint import WEIGHTS_FILE, resolve_resume

    shutil.copytree(run, copy)
    weights_file = resolve_resume(copy) / WEIGHTS_FILE
    weights = load_file(str(weights_file))
    for name, tensor in weights.items():
        if tensor.is_floating_point() and name.startswith(prefix):
            weights[name] = torch.full_like(tensor, float("nan"))
    save_file(weights, str(weights_file))
    return copy
