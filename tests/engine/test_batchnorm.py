import pytest
import torch
from torch import nn

from sslcli.engine.batchnorm import GlobalBatchNorm, synchronise_batchnorm


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
