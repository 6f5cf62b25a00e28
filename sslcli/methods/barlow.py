"""Barlow Twins (Zbontar et al. 2021): the cross-correlation of two views' embeddings pushed
towards the identity, computed on the GLOBAL batch (gathered with gradients)."""

from __future__ import annotations

import torch
from torch import nn

from sslcli.engine.collectives import gather
from sslcli.engine.contract import GroupOptions
from sslcli.methods.base import ProjectedPairMethod, TrainingDefaults
from sslcli.models.heads import mlp


def _standardise(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


def barlow_loss(z1: torch.Tensor, z2: torch.Tensor, off_diagonal: float = 0.0051) -> torch.Tensor:
    """Sum of (1 - C_ii)^2 plus ``off_diagonal`` x sum of C_ij^2 (i != j), in fp32."""
    with torch.autocast(z1.device.type, enabled=False):
        everyone1, everyone2 = gather(z1.float()), gather(z2.float())
        correlation = _standardise(everyone1).T @ _standardise(everyone2) / len(everyone1)
        diagonal = torch.diagonal(correlation)
        on = (1 - diagonal).pow(2).sum()
        off = correlation.pow(2).sum() - diagonal.pow(2).sum()
        return on + off_diagonal * off


BIASES_LR_PER_256 = 0.0048
"""The learning rate of biases and BatchNorm parameters per 256 images, where the weights
take 0.2: the paper's "Implementation details" ("a learning rate of 0.2 for the weights and
0.0048 for the biases and batch normalization parameters") and facebookresearch/barlowtwins
main.py (``--learning-rate-weights 0.2``, ``--learning-rate-biases 0.0048``, both times the
same warm-up and cosine schedule)."""


class BarlowTwins(ProjectedPairMethod):
    """Backbone, 3-layer projector (8192-8192-8192 in the paper), lambda 0.0051.

    Biases and BatchNorm parameters (ndim 1) train at 0.0048/0.2 = 0.024 of the learning rate,
    with any optimiser and any ``--lr`` (the ratio is kept); like the official LARS they skip
    weight decay and the LARS adaptation (the engine's default for them).
    """

    defaults = TrainingDefaults(optimizer="lars", lr_per_256=0.2, weight_decay=1.5e-6)
    biases_lr_scale = BIASES_LR_PER_256 / defaults.lr_per_256

    def __init__(
        self, backbone: nn.Module, hidden_dim: int = 8192, projection_dim: int = 8192
    ) -> None:
        super().__init__(backbone, mlp(backbone.out_dim, hidden_dim, projection_dim, layers=3))

    def pair_loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return barlow_loss(z1, z2)

    def group_options(self, name: str, parameter: nn.Parameter) -> GroupOptions:
        """Official main.py puts ``param.ndim == 1`` in the biases' group."""
        return GroupOptions(lr_scale=self.biases_lr_scale if parameter.ndim <= 1 else 1.0)
