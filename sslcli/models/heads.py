"""Heads put on top of a backbone: projection and prediction MLPs."""

from __future__ import annotations

import torch
from torch import nn


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    layers: int = 2,
    last_bias: bool = True,
    last_bn: bool = False,
) -> nn.Sequential:
    """Linear-BN-ReLU blocks then a plain Linear (SimCLR's projection head for layers=2).

    ``last_bias=False`` drops the last Linear's bias; ``last_bn=True`` ends the head with a
    BatchNorm without affine parameters (MoCo v3's ``_build_mlp(..., last_bn=True)``).
    """
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers - 1):
        blocks += [
            nn.Linear(width, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(True),
        ]
        width = hidden_dim
    blocks.append(nn.Linear(width, out_dim, bias=last_bias))
    if last_bn:
        blocks.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*blocks)


class DINOHead(nn.Module):
    """DINO's projection head (Caron et al. 2021, Sec. 3.1; ``DINOHead`` in the authors'
    vision_transformer.py): a 3-layer MLP with GELU to an L2-normalised bottleneck, then a
    weight-normalised linear layer without bias onto the prototypes, whose norms are fixed
    at 1 (``norm_last_layer=True``)."""

    def __init__(
        self, in_dim: int, prototypes: int, hidden_dim: int = 2048, bottleneck_dim: int = 256
    ) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        last = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, prototypes, bias=False)
        )
        magnitude = last.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1)
        magnitude.requires_grad_(False)
        self.last_layer = last

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.last_layer(nn.functional.normalize(self.mlp(features), dim=-1))
