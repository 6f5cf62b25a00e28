"""What the training loop needs from what it trains, and from what watches it train.

The engine never knows which method, data or evaluation it runs: a model is anything with
the :class:`Trainable` shape (views in, a :class:`StepOutput` out), and per-step observers
(collapse monitor, online probe, kNN evaluation: see ``sslcli.training.observers``) plug in
through :class:`Observer`'s hooks. A model whose recipe trains some parameters at a learning
rate of their own says so through :class:`DeclaresGroupOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass
class StepOutput:
    loss: torch.Tensor
    embeddings: torch.Tensor
    """Backbone features of the first view, detached: for the observers (collapse, probe)."""
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    """Scalars (detached) to log, averaged over processes by the engine."""


@dataclass(frozen=True)
class Clock:
    """Where training stands at a step, for the schedules a model keeps itself (DINO's
    teacher temperature, its frozen last layer, SIGReg's directions)."""

    step: int
    """The 0-based step being taken, counted over the whole run (resumes included)."""
    total_steps: int
    steps_per_epoch: int

    @property
    def epochs_done(self) -> float:
        """Epochs completed before this step, fractional."""
        return self.step / self.steps_per_epoch

    @property
    def epochs(self) -> int:
        return self.total_steps // self.steps_per_epoch

    @property
    def progress(self) -> float:
        """The share of training done before this step: k / K, the argument of BYOL's and
        DINO's cosine momentum schedules (0 at the first step)."""
        return self.step / self.total_steps


class Trainable(Protocol):
    """An ``nn.Module`` whose forward takes this rank's views and returns the step's loss."""

    def __call__(self, views: list[torch.Tensor]) -> StepOutput: ...

    def begin_step(self, clock: Clock) -> None:
        """Called before each step's forward pass."""

    def prepare_gradients(self, clock: Clock) -> None:
        """Called after the backward pass (gradients averaged over processes and unscaled),
        before the optimiser step: to clip or drop gradients."""

    def after_step(self, clock: Clock) -> None:
        """Called after each optimiser step, with the step's clock (EMA targets)."""


@dataclass(frozen=True)
class GroupOptions:
    """How the optimiser trains some of a model's parameters, beyond the run's settings: the
    parameters with equal options share a parameter group (``engine.optim.parameter_groups``)."""

    lr_scale: float = 1.0
    """The trainer sets the group's learning rate to this times the scheduled one."""
    fixed_lr: bool = False
    """True: ``lr_scale`` times the base learning rate at every step, neither warmed up nor
    decayed by the schedule."""
    decay: bool | None = None
    """True: with the weight matrices (weight decay and the LARS trust ratio); False: with the
    biases (neither); None: by its shape (weight matrices and kernels have ``ndim > 1``)."""


@runtime_checkable
class DeclaresGroupOptions(Protocol):
    """A model that gives some of its parameters options of their own (the others get
    ``GroupOptions()``)."""

    def group_options(self, name: str, parameter: nn.Parameter) -> GroupOptions:
        """The options of the parameter ``name`` (as ``named_parameters`` gives it)."""
        ...


@dataclass
class Logged:
    """What an observer adds at a logging step: metrics for the log, short fields for the bar."""

    metrics: dict[str, float] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)


class Observer:
    """A per-step observer of training; every hook runs on every rank (collectives allowed)
    and does nothing unless overridden."""

    state_key: str | None = None
    """The name its state is saved under in the trainer state of checkpoints (None: none)."""

    def on_start(self, model: nn.Module) -> dict[str, float]:
        """Before the first step of this process's run (after a resume too): metrics to log."""
        return {}

    def on_step(self, step: int, output: StepOutput) -> dict[str, torch.Tensor]:
        """After the update of 0-based ``step``: scalars to log (averaged over processes)."""
        return {}

    def on_log(self, step: int, output: StepOutput) -> Logged:
        """At a logging step (``step`` steps done)."""
        return Logged()

    def on_epoch_end(self, model: nn.Module, epoch: int, last: bool) -> dict[str, float]:
        """After the last step of ``epoch`` (1-based; ``last``: the run's last epoch, which a
        time budget may end part-way): metrics to log."""
        return {}

    def stop_reason(self) -> tuple[str, str] | None:
        """(message, hint) when training must stop now (a checkpoint is written first)."""
        return None

    def state(self) -> Any:
        return None

    def load_state(self, state: Any) -> None:
        """Restore what :meth:`state` returned (on resume)."""
