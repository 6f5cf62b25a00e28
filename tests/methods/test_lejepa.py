"""LeJEPA: SIGReg against a direct computation of the Epps-Pulley statistic, and the whole
loss against Algorithm 2 on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from sslcli.engine.contract import Clock
from sslcli.methods.lejepa import SLICES, LeJEPA, directions, sigreg
from sslcli.models.backbones import BackboneOptions, build_backbone


def _epps_pulley(samples: list[float], t_max: float = 3.0, knots: int = 33) -> float:
    """N x integral over [-t_max, t_max] of |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt by the
    trapezoid rule on ``knots`` points, phi_N(t) = mean_n exp(i t x_n), in complex float64."""
    ts = [-t_max + 2 * t_max * k / (knots - 1) for k in range(knots)]
    step = 2 * t_max / (knots - 1)
    values = []
    for t in ts:
        ecf = sum(complex(math.cos(t * x), math.sin(t * x)) for x in samples) / len(samples)
        gauss = math.exp(-t * t / 2)
        values.append(abs(ecf - gauss) ** 2 * gauss)
    integral = step * (sum(values) - (values[0] + values[-1]) / 2)
    return len(samples) * integral


def test_sigreg_is_the_epps_pulley_statistic_averaged_over_directions() -> None:
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(40, 5, generator=generator) * 1.5 + 0.3
    projections = directions(7, 5, 3, torch.device("cpu"))
    expected = [
        _epps_pulley((embeddings.double() @ projections[:, k].double()).tolist()) for k in range(3)
    ]
    assert sigreg(embeddings, projections).item() == pytest.approx(sum(expected) / 3, rel=1e-4)


def test_sigreg_is_small_for_gaussian_embeddings_and_large_for_collapsed_ones() -> None:
    """Under the null the statistic stays of order 1 (1.28 here); collapsed embeddings
    (206 here) and too-wide ones (265) are far from it."""
    generator = torch.Generator().manual_seed(0)
    projections = directions(0, 16, SLICES, torch.device("cpu"))
    gaussian = sigreg(torch.randn(512, 16, generator=generator), projections)
    collapsed = sigreg(torch.randn(512, 1, generator=generator).expand(512, 16) * 0.01, projections)
    stretched = sigreg(torch.randn(512, 16, generator=generator) * 3, projections)
    assert gaussian < 2
    assert min(collapsed, stretched) > 50 * gaussian


def test_directions_are_unit_columns_drawn_from_the_step_alone() -> None:
    cpu = torch.device("cpu")
    first = directions(5, 8, 4, cpu)
    torch.randn(100)  # the global generator does not enter
    assert torch.equal(first, directions(5, 8, 4, cpu))
    assert not torch.equal(first, directions(6, 8, 4, cpu))
    assert torch.allclose(first.norm(dim=0), torch.ones(4))


def test_the_loss_is_algorithm_2_on_the_projected_views() -> None:
    torch.manual_seed(0)
    method = LeJEPA(build_backbone("tiny-cnn", BackboneOptions()), 32, 6, sigreg_weight=0.2)
    generator = torch.Generator().manual_seed(1)
    views = [torch.randn(8, 3, s, s, generator=generator) for s in (16, 16, 8, 8, 8)]
    method.begin_step(Clock(3, 10, 5))
    output = method(views)
    # Algorithm 2 from the same projected embeddings, one view at a time
    features = [method.backbone(torch.cat(views[:2])), method.backbone(torch.cat(views[2:]))]
    z = method.projector(torch.cat(features)).view(5, 8, 6)
    centres = (z[0] + z[1]) / 2
    predictive = sum(((centres - z[v]) ** 2).mean() for v in range(5)) / 5
    projections = directions(3, 6, SLICES, torch.device("cpu"))
    regulariser = sum(sigreg(z[v], projections) for v in range(5)) / 5
    expected = 0.8 * predictive + 0.2 * regulariser
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert output.metrics["sigreg"].item() == pytest.approx(regulariser.item(), rel=1e-5)
