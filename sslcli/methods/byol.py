"""BYOL (Grill et al. 2020): an online network predicts a momentum target's projection of
the other view; no negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.methods.base import MethodOutput, SSLMethod, TrainingDefaults
from sslcli.methods.momentum import cosine_momentum, ema_update, frozen_copy
from sslcli.models.heads import mlp


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z_target), averaged over the batch (the target carries no gradient)."""
    return (2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=1)).mean()


class BYOL(SSLMethod):
    """Projector and predictor 4096-256; target momentum 0.996 -> 1 on a cosine."""

    defaults = TrainingDefaults(optimizer="lars", lr_per_256=0.2, weight_decay=1.5e-6)

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 4096,
        projection_dim: int = 256,
        base_momentum: float = 0.996,
    ) -> None:
        super().__init__(backbone)
        self.projector = mlp(backbone.out_dim, hidden_dim, projection_dim)
        self.predictor = mlp(projection_dim, hidden_dim, projection_dim)
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum = base_momentum

    def forward(self, views: list[torch.Tensor]) -> MethodOutput:
        if len(views) != 2:
            raise ValueError(f"BYOL takes 2 views, got {len(views)}")
        both = torch.cat(views)
        features = self.backbone(both)
        p1, p2 = self.predictor(self.projector(features)).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target_projector(self.target_backbone(both)).chunk(2)
        with torch.autocast(both.device.type, enabled=False):
            loss = (byol_loss(p1.float(), t2.float()) + byol_loss(p2.float(), t1.float())) / 2
        return MethodOutput(loss, features[: len(views[0])].detach())

    def after_step(self, progress: float) -> None:
        momentum = cosine_momentum(self.base_momentum, progress)
        ema_update(self.target_backbone, self.backbone, momentum)
        ema_update(self.target_projector, self.projector, momentum)
