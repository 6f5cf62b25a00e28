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
    """Flags collapse once it holds for ``patience`` checks in a row, in either form:

    - complete: std under ``std_fraction`` of the healthy 1/sqrt(D), and effective rank under
      ``rank_fraction`` of min(N, D) (at least 2: a point or a line);
    - dimensional (Jing et al. 2022): the effective rank under ``rank_drop`` of the highest
      it has had in this run (the untrained network's, usually), whatever the std. Healthy
      runs on the digits lose up to half their starting rank and keep it (measured: 44 ->
      23, 26 -> 10 -> 15); VICReg without its covariance term falls to a tenth (26 -> 2.5).
    """

    patience: int = 3
    std_fraction: float = 0.2
    rank_fraction: float = 0.1
    rank_drop: float = 0.25
    low_checks: int = 0
    peak_rank: float = 0.0

    def note(self, rank: float) -> None:
        """A rank seen outside the checks (the first step's): it counts towards the peak."""
        self.peak_rank = max(self.peak_rank, rank)

    def check(self, std: float, rank: float, count: int, dim: int) -> str | None:
        """A warning when collapse is established (once per episode), else None."""
        self.note(rank)
        rank_floor = max(2.0, self.rank_fraction * min(count, dim))
        complete = std < self.std_fraction / math.sqrt(dim) and rank < rank_floor
        dimensional = rank < self.rank_drop * self.peak_rank
        self.low_checks = self.low_checks + 1 if complete or dimensional else 0
        if self.low_checks != self.patience:
            return None
        causes = (
            "Likely causes: a learning rate too high, a batch too small, augmentations too "
            "weak, or a method without negatives missing its predictor or regulariser"
        )
        if complete:
            return (
                f"the embeddings are collapsing: std {std:.4f} (healthy about "
                f"{1 / math.sqrt(dim):.4f}) and effective rank {rank:.1f} of {min(count, dim)} "
                f"for {self.patience} checks. {causes}"
            )
        return (
            f"the embeddings are collapsing into few dimensions: effective rank {rank:.1f} of "
            f"{min(count, dim)}, down from {self.peak_rank:.1f}, for {self.patience} checks "
            f"(their std, {std:.4f}, does not show it). {causes}, or a decorrelation term "
            "(VICReg's covariance) too weak"
        )
