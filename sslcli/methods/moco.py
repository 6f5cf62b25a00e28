"""MoCo v3 (Chen et al. 2021): queries from the online network with a predictor, keys from a
momentum encoder, InfoNCE against the keys of the GLOBAL batch (keys carry no gradient)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.collectives import gather, rank
from sslcli.engine.contract import Clock
from sslcli.methods.base import TrainingDefaults
from sslcli.methods.momentum import MomentumTargetMethod
from sslcli.models.heads import mlp


def moco_loss(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of this rank's queries against every rank's keys, scaled by 2 x temperature.

    The keys are detached before the gather, so the gather's backward never runs.
    """
    queries = F.normalize(queries, dim=1)
    everyone = F.normalize(gather(keys.detach()), dim=1)
    logits = queries @ everyone.T / temperature
    positives = torch.arange(len(queries), device=queries.device) + rank() * len(queries)
    return F.cross_entropy(logits, positives) * 2 * temperature


class MoCo(MomentumTargetMethod):
    """Projector 4096-256 ending in a BatchNorm without affine parameters, predictor 4096-256
    without it, no biases; momentum 0.99 -> 1; temperature 1.0.

    The heads of the official ResNet recipe (facebookresearch/moco-v3 moco/builder.py,
    ``MoCo_ResNet``: projector ``_build_mlp(2, ...)`` with ``last_bn=True``, predictor
    ``_build_mlp(2, ..., last_bn=False)``, every Linear ``bias=False``); the 3-layer
    projector is the ViT recipe's, and no backbone here is a ViT.
    """

    defaults = TrainingDefaults(optimizer="lars", lr_per_256=0.3, weight_decay=1.5e-6)

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 4096,
        projection_dim: int = 256,
        temperature: float = 1.0,
        base_momentum: float = 0.99,
    ) -> None:
        super().__init__(
            backbone,
            mlp(backbone.out_dim, hidden_dim, projection_dim, last_bias=False, last_bn=True),
            mlp(projection_dim, hidden_dim, projection_dim, last_bias=False),
            base_momentum,
        )
        self.temperature = temperature

    def view_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return moco_loss(prediction, target, self.temperature)

    def momentum_progress(self, clock: Clock) -> float:
        """(k + 1) / K after step k: moco-v3's ``main_moco.py`` computes the momentum of step
        k + 1 (``adjust_moco_momentum(epoch + i / iters_per_epoch)``) and its ``builder.py``
        updates the momentum encoder with it at the start of that step's forward pass, so
        the online weights of step k are followed at step k + 1's momentum."""
        return (clock.step + 1) / clock.total_steps
