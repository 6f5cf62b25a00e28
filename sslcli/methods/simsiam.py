"""SimSiam (Chen & He 2021): no negatives, no momentum encoder; a predictor and a
stop-gradient on the target branch keep it from collapsing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.contract import GroupOptions, StepOutput
from sslcli.methods.base import SSLMethod, TrainingDefaults, per_view
from sslcli.models.heads import mlp


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-cos(p, stop_grad(z)), averaged over the batch."""
    return -F.cosine_similarity(prediction, target.detach(), dim=1).mean()


class SimSiam(SSLMethod):
    """Backbone, 3-layer projector (2048, BN on its output), 2-layer predictor (512 wide).

    ``predictor=False`` removes the predictor: the known way to make SimSiam collapse.

    The optimiser follows facebookresearch/simsiam main_simsiam.py as its README runs it
    (``--fix-pred-lr``): weight decay on every parameter, biases and BatchNorm included (one
    SGD ``weight_decay`` over all of them; paper, Sec. 3 "Baseline settings"), and the
    predictor at the base learning rate throughout while the schedule decays the rest
    (``adjust_learning_rate``: ``fix_lr`` groups keep ``init_lr``; paper, Sec. 4.2 and
    Table 1: a predictor whose lr is not decayed does a little better). Under this engine's
    warm-up the predictor is not warmed up either.
    """

    defaults = TrainingDefaults(optimizer="sgd", lr_per_256=0.05, weight_decay=1e-4)

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 2048,
        projection_dim: int = 2048,
        predictor_dim: int = 512,
        predictor: bool = True,
    ) -> None:
        super().__init__(backbone)
        self.projector = nn.Sequential(
            mlp(backbone.out_dim, hidden_dim, projection_dim, layers=3),
            nn.BatchNorm1d(projection_dim, affine=False),
        )
        self.predictor = (
            mlp(projection_dim, predictor_dim, projection_dim) if predictor else nn.Identity()
        )

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if len(views) != 2:
            raise ValueError(f"SimSiam takes 2 views, got {len(views)}")
        features = per_view(self.backbone, views)
        z1, z2 = per_view(self.projector, features)
        p1, p2 = per_view(self.predictor, [z1, z2])
        with torch.autocast(z1.device.type, enabled=False):
            loss = (
                negative_cosine(p1.float(), z2.float()) + negative_cosine(p2.float(), z1.float())
            ) / 2
        return StepOutput(loss, features[0].detach())

    def group_options(self, name: str, parameter: nn.Parameter) -> GroupOptions:
        return GroupOptions(fixed_lr=name.startswith("predictor."), decay=True)
