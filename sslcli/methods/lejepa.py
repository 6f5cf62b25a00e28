"""LeJEPA: a joint-embedding predictive architecture whose embeddings are pushed towards an
isotropic Gaussian by SIGReg (Balestriero & LeCun 2025, "LeJEPA: Provable and Scalable
Self-Supervised Learning Without the Heuristics", Algorithms 1-2 and Sec. 6.1; the authors'
lejepa/univariate/epps_pulley.py and lejepa/multivariate/slicing.py).

Every view (2 global, N local) is embedded by the backbone and a projector. The predictive
term is the mean squared distance of each view's embedding to the mean of the sample's
global-view embeddings; SIGReg is the Epps-Pulley test statistic of each view's embeddings,
projected onto random unit directions (fresh every step, the same on every process), against
the standard normal, averaged over the directions and the views. The loss is
(1 - lambda) x predictive + lambda x SIGReg: one hyper-parameter (``--sigreg-weight``, 0.05).
No teacher, no stop-gradient, no predictor.
"""

from __future__ import annotations

import torch
from torch import nn

from sslcli.engine.collectives import all_reduce_sum, world_size
from sslcli.engine.contract import Clock, StepOutput
from sslcli.methods.base import SSLMethod, TrainingDefaults, per_resolution
from sslcli.models.heads import mlp

SLICES = 1024
"""Random directions per step (Sec. 6.1)."""
KNOTS = 17
T_MAX = 3.0
"""The characteristic functions are compared at 17 points of [0, 3] (the library's
``EppsPulley`` defaults); the integrand is even, so [0, 3] stands for [-3, 3]."""


def directions(step: int, dim: int, slices: int, device: torch.device) -> torch.Tensor:
    """(dim, slices) unit columns drawn from ``step`` alone: fresh at every step, the same
    on every process (Algorithm 1 seeds its generator with the global step)."""
    generator = torch.Generator(device=device).manual_seed(step)
    drawn = torch.randn(dim, slices, generator=generator, device=device)
    return drawn / drawn.norm(dim=0, keepdim=True)


def epps_pulley_weights(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The knots t, and the trapezoid weights of the integral over [-T_MAX, T_MAX] of a
    function of |t| times the window exp(-t^2 / 2), as ``EppsPulley`` builds them."""
    t = torch.linspace(0, T_MAX, KNOTS, device=device)
    step = T_MAX / (KNOTS - 1)
    weights = torch.full((KNOTS,), 2 * step, device=device)
    weights[[0, -1]] = step
    return t, weights * torch.exp(-0.5 * t.square())


def sigreg(embeddings: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
    """The Epps-Pulley statistic of the GLOBAL batch along each direction, averaged over the
    directions: N x integral |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt, phi_N the empirical
    characteristic function of the N projected samples of every process.

    The cosine and sine sums are all-reduced differentiably, so each process's samples get
    the gradient of the global statistic (lightly's issue 1920 was a non-differentiable
    all-reduce here, which scaled that gradient by 1 / world_size)."""
    t, weights = epps_pulley_weights(embeddings.device)
    angles = (embeddings @ projections).unsqueeze(-1) * t  # (n, slices, knots)
    sums = all_reduce_sum(torch.stack([angles.cos().sum(0), angles.sin().sum(0)]))
    total = len(embeddings) * world_size()
    cos_mean, sin_mean = sums / total
    error = (cos_mean - torch.exp(-0.5 * t.square())).square() + sin_mean.square()
    return (error @ weights * total).mean()


class LeJEPA(SSLMethod):
    defaults = TrainingDefaults("adamw", lr_per_256=0.0005, weight_decay=0.05, preset="dino")
    multi_crop = True

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 2048,
        projection_dim: int = 64,
        sigreg_weight: float = 0.05,
    ) -> None:
        """A 3-layer projector (BatchNorm, as the authors' MINIMAL.md) of ``projection_dim``
        outputs; ``sigreg_weight`` is lambda."""
        super().__init__(backbone)
        self.projector = mlp(backbone.out_dim, hidden_dim, projection_dim, layers=3)
        self.sigreg_weight = sigreg_weight
        self.step = 0

    def begin_step(self, clock: Clock) -> None:
        self.step = clock.step

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if len(views) < 2:
            raise ValueError(f"LeJEPA takes 2 global views and any local ones, got {len(views)}")
        features = per_resolution(self.backbone, views)
        embedded = self.projector(torch.cat(features))
        with torch.autocast(embedded.device.type, enabled=False):
            z = embedded.float().view(len(views), len(views[0]), -1)
            predictive = (z[:2].mean(dim=0) - z).square().mean()
            projections = directions(self.step, z.shape[-1], SLICES, z.device)
            regulariser = torch.stack([sigreg(view, projections) for view in z]).mean()
            loss = (1 - self.sigreg_weight) * predictive + self.sigreg_weight * regulariser
        metrics = {"predictive": predictive.detach(), "sigreg": regulariser.detach()}
        return StepOutput(loss, features[0].detach(), metrics)
