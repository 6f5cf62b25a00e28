"""The frozen teacher of ``--method distill``: a trained encoder (what ``--model`` accepts:
an sslcli run or encoder folder, a transformers vision folder), fed the student's views at
its own resolution and with its own normalisation."""

from __future__ import annotations

import torch
from torch import nn


class FrozenTeacher(nn.Module):
    """The teacher's backbone on views standardised with ``mean``/``std``: they are put back
    to [0, 1], standardised with the teacher's statistics and resized to its side."""

    def __init__(
        self,
        backbone: nn.Module,
        size: int,
        statistics: tuple[tuple[float, ...], tuple[float, ...]],
        teacher_statistics: tuple[tuple[float, ...], tuple[float, ...]],
    ) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.size = size
        (mean, std), (teacher_mean, teacher_std) = statistics, teacher_statistics

        def column(values: tuple[float, ...]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)

        # x_teacher = (x * std + mean - teacher_mean) / teacher_std
        self.register_buffer("scale", column(std) / column(teacher_std))
        self.register_buffer("shift", (column(mean) - column(teacher_mean)) / column(teacher_std))

    @torch.no_grad()
    def forward(self, views: torch.Tensor) -> torch.Tensor:
        images = views * self.scale + self.shift
        if images.shape[-2:] != (self.size, self.size):
            images = nn.functional.interpolate(
                images, size=(self.size, self.size), mode="bilinear", antialias=True
            )
        return self.backbone(images).flatten(1).float()

    def feature_dim(self) -> int:
        """The width of the teacher's features (one forward pass of a blank image)."""
        return int(self(torch.zeros(1, 3, self.size, self.size)).shape[1])


def load_teacher(name: str, mean: tuple, std: tuple) -> FrozenTeacher:
    """The teacher ``--teacher NAME`` names, for views standardised with ``mean``/``std``."""
    from sslcli.runs.loading import load_model

    trained = load_model(name)
    return FrozenTeacher(trained.backbone, trained.size, (mean, std), (trained.mean, trained.std))
