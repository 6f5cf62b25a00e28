import copy
from pathlib import Path

import pytest
import torch

from sslcli.methods.barlow import BarlowTwins, barlow_loss
from sslcli.models.tiny_cnn import TinyCNN
from tests.methods.training import (
    assert_close_by_name,
    fit_with_trainer,
    losses_over_steps,
    noisy_views,
    official_first_lars_step,
)


def _readable_barlow(z1: torch.Tensor, z2: torch.Tensor, lam: float = 0.0051) -> float:
    """Barlow Twins' loss written out: standardise each dimension, correlate, compare to I."""
    a, b = z1.double().tolist(), z2.double().tolist()
    n, d = len(a), len(a[0])

    def standardise(z: list[list[float]]) -> list[list[float]]:
        means = [sum(row[k] for row in z) / n for k in range(d)]
        stds = [(sum((row[k] - means[k]) ** 2 for row in z) / n + 1e-5) ** 0.5 for k in range(d)]
        return [[(row[k] - means[k]) / stds[k] for k in range(d)] for row in z]

    a, b = standardise(a), standardise(b)
    c = [[sum(a[i][p] * b[i][q] for i in range(n)) / n for q in range(d)] for p in range(d)]
    on = sum((1 - c[k][k]) ** 2 for k in range(d))
    off = sum(c[p][q] ** 2 for p in range(d) for q in range(d) if p != q)
    return on + lam * off


def test_barlow_loss_matches_the_readable_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(12, 5, generator=generator)
    z2 = z1 + 0.3 * torch.randn(12, 5, generator=generator)
    assert barlow_loss(z1, z2).item() == pytest.approx(_readable_barlow(z1, z2), rel=1e-5)


def test_identical_decorrelated_views_give_almost_no_loss() -> None:
    z = torch.linalg.qr(torch.randn(64, 8, generator=torch.Generator().manual_seed(1)))[0]
    z = z - z.mean(dim=0)
    assert barlow_loss(z, z).item() < 0.05


def test_barlow_trains_a_tiny_cnn_a_few_steps_and_lowers_the_loss() -> None:
    torch.manual_seed(0)
    losses = losses_over_steps(
        BarlowTwins(TinyCNN(width=8), hidden_dim=32, projection_dim=16), lr=0.01
    )
    assert losses[-1] < 0.8 * losses[0]


def test_a_lars_step_trains_biases_and_batchnorm_at_0_0048_per_256(tmp_path: Path) -> None:
    """Barlow Twins' recipe (paper, "Implementation details"; barlowtwins main.py,
    --learning-rate-weights 0.2, --learning-rate-biases 0.0048): the weights at 0.2 x B/256,
    biases and BatchNorm parameters at 0.0048 x B/256, one step of the Trainer on LARS."""
    torch.manual_seed(0)
    method = BarlowTwins(TinyCNN(width=4), hidden_dim=16, projection_dim=8)
    views = noisy_views(batch=32)
    before = copy.deepcopy(method)
    before(views).loss.backward()

    weights_lr, biases_lr = 0.2 * 32 / 256, 0.0048 * 32 / 256
    fit_with_trainer(method, "lars", weights_lr, 1.5e-6, views, tmp_path)

    expected = {
        name: official_first_lars_step(
            start.detach(), start.grad, biases_lr if start.ndim == 1 else weights_lr, 1.5e-6
        )
        for name, start in before.named_parameters()
    }
    assert_close_by_name(dict(method.named_parameters()), expected)
