"""Collapse metrics of a batch of embeddings, and a monitor that warns when they fall.

- std of the L2-normalised embeddings per dimension, averaged: 0 when every embedding is the
  same point, about 1/sqrt(D) when they spread over the sphere;
- effective rank (RankMe, Garrido et al. 2023): exp of the entropy of the normalised singular
  values; 1 when the embeddings lie on a line, up to min(N, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def embedding_std(embeddings: torch.Tensor) -> float:
    if len(embeddings) < 2:
        return math.nan
    return float(F.normalize(embeddings.float(), dim=1).std(dim=0).mean())


def effective_rank(embeddings: torch.Tensor, eps: float = 1e-7) -> float:
    singular = torch.linalg.svdvals(embeddings.float())
    share = singular / (singular.sum() + eps) + eps
    return float(torch.exp(-(share * share.log()).sum()))


@dataclass
class CollapseMonitor:
    """Flags collapse once both metrics stay low for ``patience`` checks in a row.

    Low: std under ``std_fraction`` of the healthy 1/sqrt(D), and effective rank under
    ``rank_fraction`` of min(N, D) (at least 2: a point or a line).
    """

    patience: int = 3
    std_fraction: float = 0.2
    rank_fraction: float = 0.1
    low_checks: int = 0

    def check(self, std: float, rank: float, count: int, dim: int) -> str | None:
        """A warning when collapse is established (once per episode), else None."""
        rank_floor = max(2.0, self.rank_fraction * min(count, dim))
        low = std < self.std_fraction / math.sqrt(dim) and rank < rank_floor
        self.low_checks = self.low_checks + 1 if low else 0
        if self.low_checks != self.patience:
            return None
        return (
            f"the embeddings are collapsing: std {std:.4f} (healthy about "
            f"{1 / math.sqrt(dim):.4f}) and effective rank {rank:.1f} of {min(count, dim)} for "
            f"{self.patience} checks. Likely causes: a learning rate too high, a batch too "
            "small, augmentations too weak, or a method without negatives missing its "
            "predictor or regulariser"
        )
