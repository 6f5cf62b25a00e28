"""Spawned CPU workers (gloo): how their deaths reach the caller."""

import os
import signal

import pytest
import torch
import torch.distributed as dist

from sslcli.engine.launch import launch, plan_launch
from sslcli.engine.runtime import Runtime
from sslcli.errors import RUNTIME_EXIT_CODE, SSLError


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
