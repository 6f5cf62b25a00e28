"""One run per folder: a second holder is refused until the first lets go."""

from pathlib import Path

import pytest

from sslcli.engine.run_lock import run_folder_lock
from sslcli.errors import SSLError


def test_a_held_folder_is_refused_until_released(tmp_path: Path) -> None:
    run = tmp_path / "new" / "run"
    with run_folder_lock(run):
        assert run.is_dir()
        busy = pytest.raises(SSLError, match="another sslcli run is training in")
        with busy as refused, run_folder_lock(run):
            pass
        assert refused.value.exit_code == 2
    with run_folder_lock(run):  # released on leaving the block
        pass
