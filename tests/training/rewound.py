"""A copy of a finished run, set back to an earlier checkpoint, to resume it."""

import shutil
from pathlib import Path


def rewound_copy(run: Path, copy: Path, last_kept: int, removed: int) -> Path:
    """``run`` copied to ``copy`` with its checkpoint of step ``removed`` deleted and the one
    of step ``last_kept`` made the latest, as a run killed after ``last_kept`` leaves it."""
    shutil.copytree(run, copy)
    (copy / "checkpoints" / "latest").write_text(f"step-{last_kept:08d}\n")
    shutil.rmtree(copy / "checkpoints" / f"step-{removed:08d}")
    return copy
