"""Momentum (EMA) targets for BYOL and MoCo: a frozen copy of the online network that
follows it slowly, with the momentum raised from its base value to 1 on a cosine."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from sslcli.engine.contract import Clock, StepOutput
from sslcli.methods.base import SSLMethod, per_view


def frozen_copy(module: nn.Module) -> nn.Module:
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


def cosine_momentum(base: float, progress: float) -> float:
    """``base`` at the start of training, 1 at the end (BYOL's schedule)."""
    return 1 - (1 - base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1) / 2


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, for the parameters.

    Buffers (BatchNorm running statistics) are left to the target's own forward passes:
    they must describe the target's activations, which copies of the online network's do
    not (a target run in eval mode, as ``energy`` runs it, would be normalised wrongly).
    """
    for target_param, online_param in zip(target.parameters(), online.parameters(), strict=True):
        target_param.lerp_(online_param, 1 - momentum)


def follow_online(
    pairs: list[tuple[nn.Module, nn.Module]], base_momentum: float, progress: float
) -> None:
    """One EMA step of each (target, online) pair at the momentum the schedule gives now."""
    momentum = cosine_momentum(base_momentum, progress)
    for target, online in pairs:
        ema_update(target, online, momentum)


class MomentumTargetMethod(SSLMethod):
    """Online backbone -> projector -> predictor; a momentum copy of backbone and projector
    gives each view's target. The loss sums ``view_loss`` over both directions, in fp32."""

    def __init__(
        self,
        backbone: nn.Module,
        projector: nn.Module,
        predictor: nn.Module,
        base_momentum: float,
    ) -> None:
        super().__init__(backbone)
        self.projector = projector
        self.predictor = predictor
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(projector)
        self.base_momentum = base_momentum

    def view_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if len(views) != 2:
            raise ValueError(f"{type(self).__name__} takes 2 views, got {len(views)}")
        features = per_view(self.backbone, views)
        p1, p2 = per_view(lambda f: self.predictor(self.projector(f)), features)
        with torch.no_grad():
            t1, t2 = per_view(lambda v: self.target_projector(self.target_backbone(v)), views)
        with torch.autocast(p1.device.type, enabled=False):
            loss = self.view_loss(p1.float(), t2.float()) + self.view_loss(p2.float(), t1.float())
        return StepOutput(loss, features[0].detach())

    def momentum_progress(self, clock: Clock) -> float:
        """Where the momentum schedule stands for the update after this step: BYOL's k / K
        after step k (``byol_experiment.py`` updates the target with ``global_step``'s
        momentum after the online step)."""
        return clock.progress

    def after_step(self, clock: Clock) -> None:
        pairs = [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]
        follow_online(pairs, self.base_momentum, self.momentum_progress(clock))
