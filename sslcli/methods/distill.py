"""Distillation from a frozen teacher the user brings (LightlyTrain's default method, after
its ``distillationv2``: a linear projection of the student's features regresses the
teacher's by mean squared error; LARS at 1.5 per 256, weight decay 1e-6).

Unlike LightlyTrain's, the teacher's features are standardised per dimension over the global
batch (a BatchNorm without affine parameters, synchronised across processes) before the
regression: the pooled features of a CNN teacher share a large positive mean, and on raw
features the student learnt that mean and little else (a tiny-CNN teacher's features on held-
out digits: MSE down 10x, yet R^2 -3.1, the prediction worse than the teacher's mean feature).

The teacher (a trained encoder: an sslcli run, an encoder export, a transformers vision
folder) is given at training time as a module mapping the student's standardised views to
its features, computed without gradient; it is no part of the method's weights, so a run's
checkpoints hold the student alone, and the encoder export is the student's backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from sslcli.engine.contract import StepOutput
from sslcli.methods.base import SSLMethod, TrainingDefaults, per_view


class Distill(SSLMethod):
    defaults = TrainingDefaults("lars", lr_per_256=1.5, weight_decay=1e-6)
    takes_teacher = True

    def __init__(
        self, backbone: nn.Module, teacher: str | None = None, teacher_dim: int | None = None
    ) -> None:
        """``teacher`` names the encoder the run was taught by: an option so that the run's
        config records it (resume loads it again), not used here, where the teacher comes
        through ``teach_with``; ``teacher_dim`` is its feature width, which the projection
        maps onto."""
        super().__init__(backbone)
        width = teacher_dim or backbone.out_dim
        self.projector = nn.Linear(backbone.out_dim, width)
        self.target_norm = nn.BatchNorm1d(width, affine=False)
        self._teacher: list[nn.Module] = []
        """The frozen teacher, held outside the module's children: not in its weights, not
        switched to training mode, not wrapped by DDP."""

    def teach_with(self, teacher: nn.Module) -> None:
        """The frozen module mapping this method's views to the teacher's features."""
        self._teacher[:] = [teacher.eval().requires_grad_(False)]

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if not self._teacher:
            raise RuntimeError("Distill needs its teacher: call teach_with(teacher) first")
        teacher = self._teacher[0].to(views[0].device)
        features = per_view(self.backbone, views)
        predictions = per_view(self.projector, features)
        with torch.no_grad():
            targets = per_view(lambda v: self.target_norm(teacher(v)), views)
        with torch.autocast(views[0].device.type, enabled=False):
            losses = [
                nn.functional.mse_loss(p.float(), t.float())
                for p, t in zip(predictions, targets, strict=True)
            ]
            loss = torch.stack(losses).mean()
        return StepOutput(loss, features[0].detach())
