"""VICReg (Bardes et al. 2022): no negatives; variance and covariance terms against collapse.

The invariance term is a mean over this rank's samples (DDP's mean over ranks makes it the
global mean); the variance and covariance terms are computed on the GLOBAL batch (gathered
with gradients), identical on every rank.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.collectives import gather
from sslcli.methods.base import ProjectedPairMethod, TrainingDefaults
from sslcli.models.heads import mlp


def variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1 - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    centred = z - z.mean(dim=0)
    covariance = centred.T @ centred / (len(z) - 1)
    off_diagonal = covariance - torch.diag(torch.diagonal(covariance))
    return off_diagonal.pow(2).sum() / z.shape[1]


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance: float = 25.0,
    variance: float = 25.0,
    covariance: float = 1.0,
) -> torch.Tensor:
    """The VICReg loss of two embedding batches (this rank's rows), in fp32."""
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = z1.float(), z2.float()
        similarity = F.mse_loss(z1, z2)
        everyone1, everyone2 = gather(z1), gather(z2)
        spread = (variance_term(everyone1) + variance_term(everyone2)) / 2
        redundancy = covariance_term(everyone1) + covariance_term(everyone2)
        return invariance * similarity + variance * spread + covariance * redundancy


class VICReg(ProjectedPairMethod):
    """Backbone, 3-layer expander (8192-8192-8192 in the paper), VICReg loss (25/25/1).

    Warm-up: the official code warms up for 10 epochs (``adjust_learning_rate`` in
    facebookresearch/vicreg ``main_vicreg.py``: ``warmup_steps = 10 * len(loader)``, with
    LARS at 0.2 per 256, for runs of 100 epochs and more). sslcli's general default, a tenth of
    the run, leaves a 10-epoch run 1 epoch; on small grey images (OpenCV digits and MNIST,
    small-cnn, AdamW lr 0.005 per 256, 15 steps an epoch) that warm-up let the backbone and
    the expander collapse into a few dimensions in the first 20 steps (effective rank 12-16
    of 256, kNN under the untrained encoder). With views cut from the whole stored image, 3
    epochs still let one of three runs collapse (OpenCV digits, seed 0) and 5 epochs let
    none (benchmarks/RESULTS.md). So VICReg warms up for at least 5 epochs (half of the run
    when it is shorter than 10); from 50 epochs on the general rule gives as many or more,
    and from 100 the official code's 10.
    """

    defaults = TrainingDefaults(
        optimizer="lars", lr_per_256=0.2, weight_decay=1e-6, min_warmup_epochs=5
    )

    def __init__(
        self, backbone: nn.Module, hidden_dim: int = 8192, projection_dim: int = 8192
    ) -> None:
        super().__init__(backbone, mlp(backbone.out_dim, hidden_dim, projection_dim, layers=3))

    def pair_loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return vicreg_loss(z1, z2)
