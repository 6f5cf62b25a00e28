"""One training run per run folder at a time.

The lock is an advisory ``flock`` on ``RUN/.lock``: the operating system drops it when the
process ends, however it ends, so a killed run never leaves a stale lock that would block
``--resume``. On a filesystem that cannot lock (some network mounts) the run goes on
unlocked, with a warning: the lock guards against a mistake, it is no reason to refuse to
train.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from sslcli.errors import usage_error

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` (created if missing) for this process; refuse if another holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise usage_error(
                f"another sslcli run is training in {run_dir} right now",
                "wait for it to end, or choose another --out",
            ) from None
        except OSError as error:  # no locks here (ENOLCK, EOPNOTSUPP): train, but say so
            Console(stderr=True).print(
                f"[yellow]warning:[/] cannot lock {run_dir} on this file system "
                f"({error.strerror or error}): make sure no other run uses this folder",
                soft_wrap=True,
                highlight=False,
            )
        yield
