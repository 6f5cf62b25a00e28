import pytest
import torch

from sslcli.methods.vicreg import VICReg, vicreg_loss
from sslcli.models.tiny_cnn import TinyCNN
from tests.methods.training import losses_over_steps


def _readable_vicreg(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """The VICReg paper's loss written out with Python loops over dimensions."""
    a, b = z1.double().tolist(), z2.double().tolist()
    n, d = len(a), len(a[0])
    invariance = sum((a[i][k] - b[i][k]) ** 2 for i in range(n) for k in range(d)) / (n * d)

    def spread_and_redundancy(z: list[list[float]]) -> tuple[float, float]:
        means = [sum(row[k] for row in z) / n for k in range(d)]
        cov = [
            [
                sum((row[p] - means[p]) * (row[q] - means[q]) for row in z) / (n - 1)
                for q in range(d)
            ]
            for p in range(d)
        ]
        spread = sum(max(0.0, 1 - (cov[k][k] + 1e-4) ** 0.5) for k in range(d)) / d
        redundancy = sum(cov[p][q] ** 2 for p in range(d) for q in range(d) if p != q) / d
        return spread, redundancy

    spread_a, redundancy_a = spread_and_redundancy(a)
    spread_b, redundancy_b = spread_and_redundancy(b)
    return 25 * invariance + 25 * (spread_a + spread_b) / 2 + (redundancy_a + redundancy_b)


def test_vicreg_loss_matches_the_readable_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(10, 6, generator=generator) * 0.5
    z2 = z1 + 0.1 * torch.randn(10, 6, generator=generator)
    assert vicreg_loss(z1, z2).item() == pytest.approx(_readable_vicreg(z1, z2), rel=1e-5)


def test_a_collapsed_embedding_pays_the_full_variance_penalty() -> None:
    z = torch.ones(8, 4)
    assert vicreg_loss(z, z).item() == pytest.approx(25 * (1 - 1e-2), rel=1e-4)


def test_vicreg_trains_a_tiny_cnn_a_few_steps_and_lowers_the_loss() -> None:
    torch.manual_seed(0)
    losses = losses_over_steps(VICReg(TinyCNN(width=8), hidden_dim=32, projection_dim=32), lr=0.05)
    assert losses[-1] < 0.8 * losses[0]
