"""GlobalBatchNorm: torch's BatchNorm on one process, the whole batch's on several (gloo)."""

import contextlib
from pathlib import Path

import pytest
import torch
from torch import nn

from sslcli.engine.batchnorm import GlobalBatchNorm, synchronise_batchnorm
from sslcli.engine.launch import launch, plan_launch
from sslcli.engine.runtime import Runtime

PER_RANK_BATCH = 5
CASES = {
    # name: (shape of the whole batch, affine, autocast dtype or None)
    "2d-affine-fp32": ((2 * PER_RANK_BATCH, 3, 4, 6), True, None),
    "1d-plain-fp32": ((2 * PER_RANK_BATCH, 7), False, None),
    "2d-affine-bf16": ((2 * PER_RANK_BATCH, 3, 4, 6), True, torch.bfloat16),
}


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(8, 4), (6, 4, 5, 3)])
def test_on_one_process_it_is_torch_batchnorm(shape: tuple, momentum: float | None) -> None:
    torch.manual_seed(0)
    reference = (
        nn.BatchNorm1d(4, momentum=momentum)
        if len(shape) == 2
        else nn.BatchNorm2d(4, momentum=momentum)
    )
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    ours = synchronise_batchnorm(nn.Sequential(reference), torch.device("cpu"))[0]
    reference = (
        nn.BatchNorm1d(4, momentum=momentum)
        if len(shape) == 2
        else nn.BatchNorm2d(4, momentum=momentum)
    )
    reference.load_state_dict(ours.state_dict())
    assert isinstance(ours, GlobalBatchNorm)
    for _ in range(3):
        x = (torch.randn(shape) * 3 + 2).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        out, expected = ours(x), reference(x_ref)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        (expected * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    ours.eval()
    reference.eval()
    x = torch.randn(shape)
    torch.testing.assert_close(ours(x), reference(x))


def test_variance_stays_exact_for_large_means_with_small_spread() -> None:
    layer = GlobalBatchNorm(1, eps=1e-12, affine=False)
    x = 300 + 1e-3 * torch.randn(64, 1, generator=torch.Generator().manual_seed(0))
    exact = x.double().var(unbiased=False)
    assert layer(x).std(unbiased=False).item() == pytest.approx(1.0, rel=1e-3)
    assert layer.running_var.item() == pytest.approx(0.9 + 0.1 * exact.item() * 64 / 63, rel=1e-6)


def test_conversion_keeps_the_parameters_and_whether_they_train() -> None:
    frozen = nn.BatchNorm1d(3).requires_grad_(False)
    trained = nn.BatchNorm1d(3)
    model = synchronise_batchnorm(nn.Sequential(frozen, trained), torch.device("cpu"))
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad
    assert model[1].weight is trained.weight


@pytest.mark.parametrize("track_running_stats", [True, False])
def test_a_batchnorm_without_parameters_or_buffers_converts(track_running_stats: bool) -> None:
    torch.manual_seed(0)
    reference = nn.BatchNorm1d(3, affine=False, track_running_stats=track_running_stats)
    model = synchronise_batchnorm(
        nn.Sequential(nn.BatchNorm1d(3, affine=False, track_running_stats=track_running_stats)),
        torch.device("cpu"),
    )
    assert isinstance(model[0], GlobalBatchNorm)
    assert model[0].weight is None and model[0].bias is None
    x = torch.randn(8, 3) * 2 + 1
    torch.testing.assert_close(model[0](x), reference(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_input_is_left_as_it_was(dtype: torch.dtype) -> None:
    x = torch.randn(8, 3, dtype=dtype)
    before = x.clone()
    GlobalBatchNorm(3).to(dtype)(x)
    torch.testing.assert_close(x, before, rtol=0, atol=0)


def _saved_bytes(layer: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages that autograd keeps for the backward of ``layer(x)``."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(x)
    return sum(storages.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_keeps_only_the_input_and_the_statistics(dtype: torch.dtype) -> None:
    channels = 8
    layer = GlobalBatchNorm(channels)
    x = torch.randn(16, channels, 10, 10, dtype=dtype, requires_grad=True)
    autocast = torch.autocast("cpu", torch.bfloat16) if dtype == torch.bfloat16 else None
    with autocast or contextlib.nullcontext():
        saved = _saved_bytes(layer, x)
    statistics = 8 * channels * 8  # a few per-channel vectors, float64 at most
    assert saved <= x.numel() * x.element_size() + statistics


def _layer(shape: tuple, affine: bool) -> nn.Module:
    return (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(shape[1], affine=affine)


def _global_batchnorm_step(runtime: Runtime, inputs: Path, out: Path) -> None:
    """Every case on this rank's rows: the output, the gradients and the running statistics."""
    results = {}
    rows = slice(runtime.rank * PER_RANK_BATCH, (runtime.rank + 1) * PER_RANK_BATCH)
    for name, case in torch.load(inputs).items():
        shape, affine, dtype = CASES[name]
        layer = _layer(shape, affine)
        layer.load_state_dict(case["state"])
        layer = synchronise_batchnorm(nn.Sequential(layer), runtime.device)[0]
        x = case["x"][rows].to(dtype or torch.float32).requires_grad_()
        with torch.autocast("cpu", dtype) if dtype else contextlib.nullcontext():
            output = layer(x)
        (output.float() * case["upstream"][rows]).sum().backward()
        grads = {key: p.grad for key, p in layer.named_parameters()}
        results[name] = {"output": output, "x": x.grad, **grads, **dict(layer.named_buffers())}
    torch.save(results, out / f"rank{runtime.rank}.pt")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """The cases, and what 2 gloo processes with PER_RANK_BATCH rows each computed for them."""
    generator = torch.Generator().manual_seed(0)
    cases = {}
    for name, (shape, affine, dtype) in CASES.items():
        layer = _layer(shape, affine)
        if affine:
            nn.init.normal_(layer.weight, generator=generator)
            nn.init.normal_(layer.bias, generator=generator)
        x = torch.randn(shape, generator=generator) * 3 + 2
        upstream = torch.randn(shape, generator=generator)
        cases[name] = {"layer": layer, "x": x, "upstream": upstream, "autocast": dtype}
    folder = tmp_path_factory.mktemp("global_batchnorm")
    shared = {
        name: {"state": case["layer"].state_dict(), "x": case["x"], "upstream": case["upstream"]}
        for name, case in cases.items()
    }
    torch.save(shared, folder / "inputs.pt")
    launch(
        plan_launch(0, 2, 0, {}), "fp32", 0, _global_batchnorm_step, folder / "inputs.pt", folder
    )
    ranks = [torch.load(folder / f"rank{rank}.pt") for rank in range(2)]
    return cases, {name: [rank[name] for rank in ranks] for name in cases}


@pytest.mark.parametrize("name", CASES)
def test_two_processes_equal_torch_batchnorm_on_the_whole_batch(
    two_processes: tuple[dict, dict], name: str
) -> None:
    cases, results = two_processes
    case, (first, second) = cases[name], results[name]
    dtype = case["autocast"]
    reference = case["layer"]
    x = case["x"].to(dtype).float().requires_grad_() if dtype else case["x"].requires_grad_()
    expected = reference(x)
    # the incoming gradient is the upstream tensor rounded to the output's dtype
    upstream = case["upstream"].to(dtype).float() if dtype else case["upstream"]
    (expected * upstream).sum().backward()
    tolerance = {"rtol": 1.6e-2, "atol": 1e-2} if dtype else {"rtol": 1e-5, "atol": 1e-5}

    def both(key: str) -> torch.Tensor:
        return torch.cat([first[key], second[key]]).float()

    assert first["output"].dtype == (dtype or torch.float32)
    assert first["x"].dtype == (dtype or torch.float32)
    torch.testing.assert_close(both("output"), expected.detach(), **tolerance)
    torch.testing.assert_close(both("x"), x.grad, **tolerance)
    for parameter, value in reference.named_parameters():
        # each rank's gradient is its rows' share; DDP's average over ranks then trains the
        # mean of the ranks' losses
        torch.testing.assert_close(first[parameter] + second[parameter], value.grad, **tolerance)
    for buffer, value in reference.named_buffers():
        torch.testing.assert_close(first[buffer], value, msg=buffer)
        torch.testing.assert_close(second[buffer], value, msg=buffer)
