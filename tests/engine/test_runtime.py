import pytest

from sslcli.engine.launch import LaunchPlan, plan_launch
from sslcli.engine.runtime import make_runtime, resolve_precision
from sslcli.errors import SSLError


@pytest.mark.parametrize(
    ("requested", "device", "bf16", "expected"),
    [
        ("auto", "cpu", True, "fp32"),
        ("auto", "cuda", True, "bf16"),
        ("auto", "cuda", False, "fp16"),
        ("bf16", "cpu", True, "bf16"),
        ("fp32", "cuda", True, "fp32"),
        ("fp16", "cuda", True, "fp16"),
    ],
)
def test_precision_resolution(requested: str, device: str, bf16: bool, expected: str) -> None:
    assert resolve_precision(requested, device, bf16) == expected


@pytest.mark.parametrize(
    ("requested", "device", "bf16", "says"),
    [
        ("fp16", "cpu", True, "fp16 needs a GPU"),
        ("bf16", "cuda", False, "does not support bf16"),
        ("fp8", "cpu", True, "unknown precision"),
    ],
)
def test_precision_errors(requested: str, device: str, bf16: bool, says: str) -> None:
    with pytest.raises(SSLError, match=says) as raised:
        resolve_precision(requested, device, bf16)
    assert raised.value.exit_code == 2


def test_default_device_is_one_gpu_when_present_else_cpu() -> None:
    assert plan_launch(None, 1, cuda_count=0, env={}) == LaunchPlan("cpu", 1)
    assert plan_launch(None, 1, cuda_count=4, env={}) == LaunchPlan("cuda", 1)


def test_gpus_and_cpu_processes() -> None:
    assert plan_launch(2, 1, cuda_count=4, env={}) == LaunchPlan("cuda", 2)
    assert plan_launch(0, 3, cuda_count=4, env={}) == LaunchPlan("cpu", 3)


def test_more_gpus_than_present_names_how_many_were_found() -> None:
    with pytest.raises(SSLError, match="asked for 2 GPUs but found 0 GPUs") as raised:
        plan_launch(2, 1, cuda_count=0, env={})
    assert "--gpus 0" in raised.value.hint
    with pytest.raises(SSLError, match="found 1 GPU on") as raised:
        plan_launch(8, 1, cuda_count=1, env={})
    assert "--gpus 1" in raised.value.hint


@pytest.mark.parametrize(("gpus", "procs", "says"), [(-1, 1, "0 or more"), (1, 2, "only to CPU")])
def test_bad_process_options(gpus: int, procs: int, says: str) -> None:
    with pytest.raises(SSLError, match=says):
        plan_launch(gpus, procs, cuda_count=2, env={})


def test_torchrun_environment_joins_the_group_instead_of_spawning() -> None:
    env = {"RANK": "3", "WORLD_SIZE": "16", "LOCAL_RANK": "3"}
    assert plan_launch(None, 1, cuda_count=8, env=env) == LaunchPlan("cuda", 16, True)
    assert plan_launch(0, 1, cuda_count=0, env=env) == LaunchPlan("cpu", 16, True)
    with pytest.raises(SSLError, match="torchrun starts the processes"):
        plan_launch(8, 1, cuda_count=8, env=env)


def test_cpu_runtime_is_seeded_and_main() -> None:
    import torch

    first = make_runtime("cpu", "auto", seed=7)
    draw = torch.rand(3)
    second = make_runtime("cpu", "auto", seed=7)
    assert torch.equal(draw, torch.rand(3))
    assert first == second
    assert first.is_main and not first.distributed and first.precision == "fp32"
    assert first.autocast_dtype is None


def test_bf16_autocast_on_cpu() -> None:
    import torch

    runtime = make_runtime("cpu", "bf16", seed=0)
    layer = torch.nn.Linear(4, 4)
    with runtime.autocast():
        out = layer(torch.ones(2, 4))
    assert out.dtype == torch.bfloat16
