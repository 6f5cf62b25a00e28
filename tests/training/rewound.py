"""A copy of a finished run, set back to an earlier checkpoint, to resume it."""

import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume


def rewound_copy(run: Path, copy: Path, last_kept: int, removed: int) -> Path:
    """``run`` copied to ``copy`` with its checkpoint of step ``removed`` deleted and the one
    of step ``last_kept`` made the latest, as a run killed after ``last_kept`` leaves it."""
    shutil.copytree(run, copy)
    (copy / "checkpoints" / "latest").write_text(f"step-{last_kept:08d}\n")
    shutil.rmtree(copy / "checkpoints" / f"step-{removed:08d}")
    return copy


def assert_resumes_to_the_same_weights(command: str, run: Path, again: Path, steps: int) -> None:
    """A copy of the ``steps``-step ``run`` (a checkpoint each step) rewound to its last but one
    checkpoint and resumed with ``sslcli COMMAND --resume``: the last step is trained again,
    to the same weights, bit for bit."""
    final = load_checkpoint(resolve_resume(run))
    assert final.config["step"] == steps
    rewound_copy(run, again, last_kept=steps - 1, removed=steps)
    resumed = CliRunner().invoke(app, [command, "--resume", str(again)])
    assert resumed.exit_code == 0, resumed.output
    weights = load_checkpoint(resolve_resume(again)).weights
    assert set(weights) == set(final.weights)
    for name, tensor in final.weights.items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=0, msg=name)
