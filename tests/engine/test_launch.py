"""Spawned CPU workers (gloo): how their deaths reach the caller, SIGTERM, and a taken port."""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import sslcli.engine.launch as launch_module
from sslcli.engine.launch import launch, plan_launch
from sslcli.engine.runtime import Runtime
from sslcli.errors import RUNTIME_EXIT_CODE, SSLError

REPO = Path(__file__).resolve().parents[2]


def _killed_by_sigkill(runtime: Runtime, rank: int) -> None:
    """``rank`` dies as the OOM killer would end it; the others then wait on it in gloo."""
    if runtime.rank == rank:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.all_reduce(torch.ones(1))


@pytest.mark.parametrize("rank", [0, 1])
def test_a_worker_killed_by_sigkill_is_named_with_the_likely_cause(rank: int) -> None:
    with pytest.raises(SSLError) as raised:
        launch(plan_launch(0, 2, 0, {}), "fp32", 0, _killed_by_sigkill, rank)
    assert raised.value.exit_code == RUNTIME_EXIT_CODE
    assert f"rank {rank} was killed by SIGKILL" in raised.value.message
    assert "out of memory" in raised.value.message
    assert "Connection closed" not in str(raised.value)


def _write_port(runtime: Runtime, out: Path) -> None:
    dist.barrier()
    if runtime.is_main:
        out.write_text(os.environ["MASTER_PORT"])


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that another program listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_launching_tries_another_port_when_the_first_is_taken(
    taken_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: a port found free is taken by another program before rank 0 binds it. Only
    # the choice of the first port is forced here; the workers and their bind are real.
    free_port = launch_module._free_port
    chosen = iter([taken_port])
    monkeypatch.setattr(launch_module, "_free_port", lambda: next(chosen, None) or free_port())
    out = tmp_path / "port"
    launch(plan_launch(0, 2, 0, {}), "fp32", 0, _write_port, out)
    assert int(out.read_text()) != taken_port


SIGTERM_WHILE_STARTING = """
import os, signal, sys
import torch.multiprocessing as mp
from sslcli.engine.launch import launch, plan_launch
from sslcli.errors import SSLError
from tests.engine.test_launch import _write_port

start_processes = mp.start_processes

def sigterm_then_start(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # e.g. a scheduler stopping the job right now
    return start_processes(*args, **kwargs)

mp.start_processes = sigterm_then_start
try:
    launch(plan_launch(0, 2, 0, {}), "fp32", 0, _write_port, sys.argv[1])
except SSLError as error:
    print(error.message)
    sys.exit(error.exit_code)
"""


def test_a_sigterm_while_the_workers_start_reaches_them(tmp_path: Path) -> None:
    """The launcher handles SIGTERM before it starts the workers, and passes it on to them."""
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_WHILE_STARTING, str(tmp_path / "port")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # not killed itself (-15): the workers, still starting, got the SIGTERM and ended
    assert result.returncode == RUNTIME_EXIT_CODE, result.stderr
    assert "was killed by SIGTERM" in result.stdout
    assert not (tmp_path / "port").exists()
