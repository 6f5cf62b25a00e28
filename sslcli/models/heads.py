"""Heads put on top of a backbone: projection and prediction MLPs."""

from __future__ import annotations

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
