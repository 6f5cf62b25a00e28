import pytest
import torch

from sslcli.methods.barlow import BarlowTwins, barlow_loss
from sslcli.models.tiny_cnn import TinyCNN
from tests.methods.training import losses_over_steps


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
