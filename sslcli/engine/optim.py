"""Optimisers and learning-rate schedules for self-supervised pre-training.

LARS as in SimCLR, solo-learn and lightly; biases and normalisation parameters go in a
parameter group that skips weight decay and the LARS adaptation. A model may give some of its
parameters a learning rate of their own (``contract.DeclaresGroupOptions``): each group carries
an ``"lr_scale"`` that the trainer multiplies the scheduled learning rate by, or the base one
for a ``"fixed_lr"`` group (:func:`set_learning_rates`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

import torch

from sslcli.engine.contract import DeclaresGroupOptions, GroupOptions
from sslcli.errors import usage_error

OPTIMIZERS = ("sgd", "lars", "adamw")


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step is rescaled per parameter by the LARS trust ratio.

    For a parameter ``p`` with gradient ``g``: ``g += weight_decay * p``, then ``g *=
    trust_coefficient * ||p|| / (||g|| + eps)`` (1 when either norm is 0), then
    ``mu = momentum * mu + g`` and ``p -= lr * mu``. Groups with ``"lars_exclude": True``
    skip the weight decay and the rescaling.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
    ) -> None:
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if value < 0:
                raise usage_error(f"LARS {name} must be >= 0, got {value}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if not group["lars_exclude"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                    param_norm = torch.linalg.vector_norm(param)
                    grad_norm = torch.linalg.vector_norm(grad)
                    # torch.where keeps the ratio on the device: no synchronisation per tensor.
                    ratio = torch.where(
                        (param_norm > 0) & (grad_norm > 0),
                        group["trust_coefficient"] * param_norm / (grad_norm + group["eps"]),
                        torch.ones_like(param_norm),
                    )
                    grad = grad.mul(ratio)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(grad)
                param.add_(buffer, alpha=-group["lr"])
        return loss


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters in groups: weight matrices and kernels (``ndim > 1``) with
    ``weight_decay``; biases and normalisation parameters without decay and with
    ``"lars_exclude": True``. A model with ``DeclaresGroupOptions`` moves parameters between
    the two (``decay``) and splits them further by the options it gives them; every group has
    its ``"lr_scale"`` and ``"fixed_lr"``.

    The two groups of the default options come first and are always present (possibly empty),
    so optimiser states stay loadable.
    """
    options = model.group_options if isinstance(model, DeclaresGroupOptions) else _no_options
    shares: dict[tuple[bool, GroupOptions], list[torch.nn.Parameter]] = {
        (True, GroupOptions()): [],
        (False, GroupOptions()): [],
    }
    for name, param in model.named_parameters():
        if param.requires_grad:
            shares.setdefault(_share(param, options(name, param)), []).append(param)
    return [_group(params, decays, how, weight_decay) for (decays, how), params in shares.items()]


def _no_options(name: str, parameter: torch.nn.Parameter) -> GroupOptions:
    return GroupOptions()


def _share(param: torch.nn.Parameter, options: GroupOptions) -> tuple[bool, GroupOptions]:
    """Whether ``param`` decays, and its options with that decided (``decay`` left None)."""
    decays = param.ndim > 1 if options.decay is None else options.decay
    return decays, dataclasses.replace(options, decay=None)


def _group(
    params: list[torch.nn.Parameter], decays: bool, options: GroupOptions, weight_decay: float
) -> dict:
    return {
        "params": params,
        "weight_decay": weight_decay if decays else 0.0,
        "lars_exclude": not decays,
        "lr_scale": options.lr_scale,
        "fixed_lr": options.fixed_lr,
    }


def set_learning_rates(optimizer: torch.optim.Optimizer, scheduled: float, base: float) -> None:
    """Each group's learning rate for a step whose schedule gives ``scheduled`` (``base``
    before warm-up and decay): the group's ``"lr_scale"`` times ``base`` for a ``"fixed_lr"``
    group, times ``scheduled`` for the others (a group without these keys: ``scheduled``)."""
    for group in optimizer.param_groups:
        rate = base if group.get("fixed_lr", False) else scheduled
        group["lr"] = rate * group.get("lr_scale", 1.0)


def set_weight_decays(optimizer: torch.optim.Optimizer, value: float) -> None:
    """The weight decay of every group that decays (not the biases' and norms')."""
    for group in optimizer.param_groups:
        if not group.get("lars_exclude", False):
            group["weight_decay"] = value


def make_optimizer(
    name: str, model: torch.nn.Module, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """The optimiser ``name`` (one of ``OPTIMIZERS``) over ``parameter_groups(model)``, each
    group at ``lr`` times its ``"lr_scale"``."""
    if name not in OPTIMIZERS:
        raise usage_error(
            f"unknown optimizer {name!r}", f"known optimizers: {', '.join(OPTIMIZERS)}"
        )
    groups = parameter_groups(model, weight_decay)
    if not any(group["params"] for group in groups):
        raise usage_error("the model has no trainable parameters", "unfreeze part of the model")
    if name == "sgd":
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=False)
    elif name == "lars":
        optimizer = LARS(groups, lr=lr, momentum=momentum)
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr)
    set_learning_rates(optimizer, lr, lr)
    return optimizer


def warmup_cosine(
    step: int, total_steps: int, warmup_steps: int, base_lr: float, final_lr: float = 0.0
) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up to ``base_lr`` over ``warmup_steps``
    (reached at the last warm-up step), then cosine decay to ``final_lr`` at ``total_steps``.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, progress))
    return final_lr + 0.5 * (base_lr - final_lr) * (1 + math.cos(math.pi * progress))


def scaled_lr(lr_per_256: float, global_batch: int) -> float:
    """The linear scaling rule: the learning rate for ``global_batch`` given the one for 256."""
    if global_batch < 1:
        raise usage_error(f"the global batch size must be >= 1, got {global_batch}")
    return lr_per_256 * global_batch / 256
