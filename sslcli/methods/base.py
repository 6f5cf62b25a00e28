"""The contract between the engine and an SSL method: views in, a loss out.

A method owns its backbone and heads and computes its loss from a list of view batches
(one tensor per view, this rank's samples). Losses over the global batch use the engine's
collectives; methods never print, never touch devices or ranks otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sslcli.engine.contract import Clock, StepOutput


@dataclass(frozen=True)
class TrainingDefaults:
    """A method's published training settings; the learning rate is per 256 images."""

    optimizer: str
    lr_per_256: float
    weight_decay: float
    min_warmup_epochs: int = 0
    """The fewest warm-up epochs the default schedule gives (half of the run when the run is
    shorter than twice that), above the general min(10, epochs / 10)."""
    final_weight_decay: float | None = None
    """The weight decay a cosine raises ``weight_decay`` to by the end (None: constant)."""
    preset: str = "simclr"
    """The augmentation preset the method's paper draws its views with."""


def per_view(
    module: Callable[[torch.Tensor], torch.Tensor], views: list[torch.Tensor]
) -> list[torch.Tensor]:
    """``module`` on each view's batch separately, as lightly, solo-learn and MoCo v3 run
    their models: BatchNorm normalises each view by its own statistics, and two batches of B
    train faster on CPUs than one of 2B (see benchmarks/RESULTS.md)."""
    return [module(view) for view in views]


def per_resolution(
    module: Callable[[torch.Tensor], torch.Tensor], views: list[torch.Tensor]
) -> list[torch.Tensor]:
    """``module`` on each run of consecutive views of one size, concatenated: DINO's
    ``MultiCropWrapper`` (the 2 global crops in one pass, the local ones in another); the
    outputs split back into one per view."""
    outputs: list[torch.Tensor] = []
    start = 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape == views[start].shape:
            end += 1
        batch = module(torch.cat(views[start:end]))
        outputs += batch.split([len(view) for view in views[start:end]])
        start = end
    return outputs


class SSLMethod(nn.Module):
    """An objective with the engine's ``Trainable`` shape: ``forward(views) -> StepOutput``."""

    defaults: TrainingDefaults
    multi_crop: bool = False
    """Whether it takes local crops after its 2 global views (DINO's multi-crop)."""
    needs_patches: bool = False
    """Whether it works on a ViT's patch tokens (iBOT's masking)."""
    takes_teacher: bool = False
    """Whether it learns from a frozen teacher given at training time (``teach_with``)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @classmethod
    def options_for_data(cls, options: dict[str, object], images: int) -> dict[str, object]:
        """``options`` with the defaults that depend on the number of training images filled
        in (DINO's prototype count); the others as given."""
        return options

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    def begin_step(self, clock: Clock) -> None:
        """Called before each step's forward pass."""

    def prepare_gradients(self, clock: Clock) -> None:
        """Called after the backward pass, before the optimiser step."""

    def after_step(self, clock: Clock) -> None:
        """Called after each optimiser step, with the step's clock (EMA targets)."""


class ProjectedPairMethod(SSLMethod):
    """Two views through the backbone and a projector; a loss between the two projections."""

    def __init__(self, backbone: nn.Module, projector: nn.Module) -> None:
        super().__init__(backbone)
        self.projector = projector

    def pair_loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if len(views) != 2:
            raise ValueError(f"{type(self).__name__} takes 2 views, got {len(views)}")
        f1, f2 = per_view(self.backbone, views)
        z1, z2 = per_view(self.projector, [f1, f2])
        return StepOutput(self.pair_loss(z1, z2), f1.detach())
