"""BYOL (Grill et al. 2020): an online network predicts a momentum target's projection of
the other view; no negatives.

The loss is the SUM of the two directions, l(p1, z2') + l(p2, z1'): the paper's symmetrised
L + L~ (Sec. 3.1) and deepmind-research byol/byol_experiment.py ``loss_fn``, which adds the two
``regression_loss`` terms before the mean over the batch. A mean of the two would halve the
gradients, so the published learning rate and weight decay would act as other ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.methods.base import TrainingDefaults
from sslcli.methods.momentum import MomentumTargetMethod
from sslcli.models.heads import mlp


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z_target), averaged over the batch (the target carries no gradient)."""
    return (2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=1)).mean()


class BYOL(MomentumTargetMethod):
    """Projector and predictor 4096-256; target momentum 0.996 -> 1 on a cosine."""

    defaults = TrainingDefaults(optimizer="lars", lr_per_256=0.2, weight_decay=1.5e-6)

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 4096,
        projection_dim: int = 256,
        base_momentum: float = 0.996,
    ) -> None:
        super().__init__(
            backbone,
            mlp(backbone.out_dim, hidden_dim, projection_dim),
            mlp(projection_dim, hidden_dim, projection_dim),
            base_momentum,
        )

    def view_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return byol_loss(prediction, target)
