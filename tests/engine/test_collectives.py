"""2 processes x batch B must equal 1 process x batch 2B, in loss and in gradients (gloo)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from sslcli.engine.collectives import all_reduce_sum, gather
from sslcli.engine.launch import launch, plan_launch
from sslcli.engine.runtime import Runtime
from sslcli.errors import SSLError

PER_RANK_BATCH = 6
REPO = Path(__file__).resolve().parents[2]


def _global_batch_loss(z: torch.Tensor, world_size: int, naive_gather: bool) -> torch.Tensor:
    """A contrastive term over the gathered batch plus a variance term on global statistics.

    Each rank's loss is the mean over its own rows, so the mean over ranks (what DDP trains)
    equals the loss of one process holding every row.
    """
    z = F.normalize(z, dim=1)
    if naive_gather and world_size > 1:
        parts = [torch.empty_like(z) for _ in range(world_size)]
        dist.all_gather(parts, z.detach())
        parts[dist.get_rank()] = z
        everyone = torch.cat(parts)
    else:
        everyone = gather(z)
    contrastive = torch.logsumexp(z @ everyone.T / 0.5, dim=1).mean()
    count = z.shape[0] * world_size
    mean = all_reduce_sum(z.sum(0)) / count
    variance = all_reduce_sum(((z - mean) ** 2).sum(0)) / (count - 1)
    return contrastive + F.relu(1 - variance.add(1e-4).sqrt()).mean()


def step(runtime: Runtime, inputs: Path, out: Path, naive_gather: bool = False) -> None:
    data = torch.load(inputs)
    rows = data["x"].shape[0] // runtime.world_size
    x = data["x"][runtime.rank * rows : (runtime.rank + 1) * rows]
    model = torch.nn.Linear(x.shape[1], 8)
    model.load_state_dict(data["weights"])
    trained = DistributedDataParallel(model) if runtime.distributed else model
    loss = _global_batch_loss(trained(x), runtime.world_size, naive_gather)
    loss.backward()
    mean_loss = all_reduce_sum(loss.detach()) / runtime.world_size
    if runtime.is_main:
        grads = {name: p.grad for name, p in model.named_parameters()}
        torch.save({"loss": mean_loss, "grads": grads, "rank": runtime.rank}, out)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    path = tmp_path / "inputs.pt"
    weights = torch.nn.Linear(5, 8).state_dict()
    torch.save(
        {"x": torch.randn(2 * PER_RANK_BATCH, 5, generator=generator), "weights": weights}, path
    )
    return path


def _run(processes: int, inputs: Path, out: Path, naive_gather: bool = False) -> dict:
    launch(plan_launch(0, processes, 0, {}), "fp32", 0, step, inputs, out, naive_gather)
    return torch.load(out)


def test_two_processes_equal_one_process_with_the_doubled_batch(inputs: Path) -> None:
    one = _run(1, inputs, inputs.with_name("one.pt"))
    two = _run(2, inputs, inputs.with_name("two.pt"))
    torch.testing.assert_close(two["loss"], one["loss"])
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-5, atol=1e-6)


def test_a_gather_without_gradients_is_caught(inputs: Path) -> None:
    one = _run(1, inputs, inputs.with_name("one.pt"))
    naive = _run(2, inputs, inputs.with_name("naive.pt"), naive_gather=True)
    torch.testing.assert_close(naive["loss"], one["loss"])
    assert not torch.allclose(naive["grads"]["weight"], one["grads"]["weight"], atol=1e-5)


def test_torchrun_started_processes_join_the_group(inputs: Path) -> None:
    one = _run(1, inputs, inputs.with_name("one.pt"))
    out = inputs.with_name("torchrun.pt")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += [
        "--master-port",
        str(_free_port()),
        str(Path(__file__).with_name("torchrun_entry.py")),
    ]
    subprocess.run(
        [*command, str(inputs), str(out)],
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    two = torch.load(out)
    torch.testing.assert_close(two["loss"], one["loss"])
    torch.testing.assert_close(two["grads"]["weight"], one["grads"]["weight"], rtol=1e-5, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fail_on_rank_one(runtime: Runtime) -> None:
    if runtime.rank == 1:
        raise SSLError("rank one saw a bad input", "fix the input", exit_code=2)


def test_an_error_in_a_worker_process_reaches_the_caller() -> None:
    with pytest.raises(SSLError, match="rank one saw a bad input") as raised:
        launch(plan_launch(0, 2, 0, {}), "fp32", 0, _fail_on_rank_one)
    assert raised.value.hint == "fix the input"
    assert raised.value.exit_code == 2


def test_collectives_are_identities_on_one_process() -> None:
    z = torch.randn(3, 2, requires_grad=True)
    assert gather(z) is z
    assert all_reduce_sum(z) is z
