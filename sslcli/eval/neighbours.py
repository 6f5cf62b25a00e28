"""Nearest neighbours by cosine similarity, for retrieval and duplicate finding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslcli.errors import usage_error


def nearest_neighbours(
    features: torch.Tensor, k: int, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``k`` most cosine-similar other rows: indices and similarities (N, k).

    A row is never its own neighbour. Rows are compared
    ``chunk`` at a time, so memory stays at ``chunk x N`` similarities.
    """
    if k < 1:
        raise usage_error(f"--knn must be 1 or more, got {k}")
    if k >= len(features):
        raise usage_error(
            f"--knn {k} asks for more neighbours than the {len(features) - 1} other images",
            f"use --knn {max(1, len(features) - 1)} or less",
        )
    unit = F.normalize(features.float(), dim=1)
    indices, similarities = [], []
    for start in range(0, len(unit), chunk):
        scores = unit[start : start + chunk] @ unit.T
        rows = torch.arange(len(scores))
        scores[rows, rows + start] = -torch.inf
        top, index = scores.topk(k, dim=1)
        indices.append(index)
        similarities.append(top)
    return torch.cat(indices), torch.cat(similarities)
