"""MoCo v3 (Chen et al. 2021): queries from the online network with a predictor, keys from a
momentum encoder, InfoNCE against the keys of the GLOBAL batch (keys carry no gradient)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from sslcli.engine.collectives import rank, world_size
from sslcli.methods.base import MethodOutput, SSLMethod, TrainingDefaults
from sslcli.methods.momentum import cosine_momentum, ema_update, frozen_copy
from sslcli.models.heads import mlp


def _gather_keys(keys: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return keys
    parts = [torch.empty_like(keys) for _ in range(world_size())]
    dist.all_gather(parts, keys.contiguous())
    return torch.cat(parts)


def moco_loss(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of this rank's queries against every rank's keys, scaled by 2 x temperature."""
    queries = F.normalize(queries, dim=1)
    everyone = F.normalize(_gather_keys(keys.detach()), dim=1)
    logits = queries @ everyone.T / temperature
    positives = torch.arange(len(queries), device=queries.device) + rank() * len(queries)
    return F.cross_entropy(logits, positives) * 2 * temperature


class MoCo(SSLMethod):
    """Projector 4096-256 (3 layers), predictor 4096-256; momentum 0.99 -> 1; temperature 1.0."""

    defaults = TrainingDefaults(optimizer="lars", lr_per_256=0.3, weight_decay=1.5e-6)

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 4096,
        projection_dim: int = 256,
        temperature: float = 1.0,
        base_momentum: float = 0.99,
    ) -> None:
        super().__init__(backbone)
        self.projector = mlp(backbone.out_dim, hidden_dim, projection_dim, layers=3)
        self.predictor = mlp(projection_dim, hidden_dim, projection_dim)
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)
        self.temperature = temperature
        self.base_momentum = base_momentum

    def forward(self, views: list[torch.Tensor]) -> MethodOutput:
        if len(views) != 2:
            raise ValueError(f"MoCo takes 2 views, got {len(views)}")
        both = torch.cat(views)
        features = self.backbone(both)
        q1, q2 = self.predictor(self.projector(features)).chunk(2)
        with torch.no_grad():
            k1, k2 = self.target_projector(self.target_backbone(both)).chunk(2)
        with torch.autocast(both.device.type, enabled=False):
            t = self.temperature
            loss = moco_loss(q1.float(), k2.float(), t) + moco_loss(q2.float(), k1.float(), t)
        return MethodOutput(loss, features[: len(views[0])].detach())

    def after_step(self, progress: float) -> None:
        momentum = cosine_momentum(self.base_momentum, progress)
        ema_update(self.target_backbone, self.backbone, momentum)
        ema_update(self.target_projector, self.projector, momentum)
