"""SimCLR (Chen et al. 2020): the NT-Xent/InfoNCE loss between two views, negatives from the
global batch.

Each rank scores its own anchors against every embedding of every rank (gathered with
gradients); positives sit at this rank's offset in the gathered batch. The mean over ranks of
the ranks' losses (what DDP trains) is the loss of one process holding the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.collectives import gather, rank
from sslcli.methods.base import ProjectedPairMethod, TrainingDefaults
from sslcli.models.heads import mlp


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over the global batch for this rank's anchors (both directions), in fp32."""
    with torch.autocast(z1.device.type, enabled=False):
        return _nt_xent(z1.float(), z2.float(), temperature)


def _nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    everyone1, everyone2 = gather(z1), gather(z2)
    local = z1.shape[0]
    positives = torch.arange(local, device=z1.device) + rank() * local
    itself = F.one_hot(positives, everyone1.shape[0]).bool()
    logits = []
    for anchors, same_view, other_view in ((z1, everyone1, everyone2), (z2, everyone2, everyone1)):
        to_other = anchors @ other_view.T / temperature
        to_same = (anchors @ same_view.T / temperature).masked_fill(itself, float("-inf"))
        logits.append(torch.cat([to_other, to_same], dim=1))
    return F.cross_entropy(torch.cat(logits), positives.repeat(2))


class SimCLR(ProjectedPairMethod):
    """Backbone, 2-layer projection head, NT-Xent."""

    defaults = TrainingDefaults(optimizer="lars", lr_per_256=0.3, weight_decay=1e-6)

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 2048,
        projection_dim: int = 128,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(backbone, mlp(backbone.out_dim, hidden_dim, projection_dim))
        self.temperature = temperature

    def pair_loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature)
