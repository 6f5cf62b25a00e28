import math

import pytest
import torch

from sslcli.methods.simclr import SimCLR, nt_xent
from sslcli.models.tiny_cnn import TinyCNN
from tests.methods.training import losses_over_steps


def _readable_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's loss written out: for each of the 2N embeddings, -log of its positive's share."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).tolist()
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        scores = {
            j: math.exp(sum(a * b for a, b in zip(z[i], z[j], strict=True)) / temperature)
            for j in range(2 * n)
            if j != i
        }
        total += -math.log(scores[positive] / sum(scores.values()))
    return total / (2 * n)


def test_nt_xent_matches_the_readable_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=generator), torch.randn(6, 5, generator=generator)
    for temperature in (0.1, 0.5):
        expected = _readable_nt_xent(z1, z2, temperature)
        assert nt_xent(z1, z2, temperature).item() == pytest.approx(expected, rel=1e-5)


def test_identical_views_far_from_others_give_a_low_loss() -> None:
    z = torch.eye(8) * 10
    assert nt_xent(z, z, 0.1).item() < 1e-3


def test_simclr_trains_a_tiny_cnn_a_few_steps_and_lowers_the_loss() -> None:
    torch.manual_seed(0)
    losses = losses_over_steps(
        SimCLR(TinyCNN(width=8), hidden_dim=32, projection_dim=16, temperature=0.5), lr=0.1
    )
    assert losses[-1] < losses[0] - 0.3
