"""Training a method in tests: a few plain SGD steps (the losses it saw), or steps through the
engine's Trainer with the optimiser train-siamese builds (the path a real run takes)."""

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from sslcli.engine.contract import Clock, Observer
from sslcli.engine.metrics_log import METRICS_FILE
from sslcli.engine.optim import make_optimizer
from sslcli.engine.runtime import make_runtime
from sslcli.engine.trainer import Schedule, Trainer
from sslcli.methods.base import SSLMethod


def noisy_views(batch: int = 16, size: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """Two noisy copies of the same random images."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=generator)
    return [images + 0.05 * torch.randn(images.shape, generator=generator) for _ in range(2)]


def losses_over_steps(method: SSLMethod, lr: float, steps: int = 15) -> list[float]:
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=lr)
    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    views = [images + 0.05 * torch.randn_like(images), images + 0.05 * torch.randn_like(images)]
    losses = []
    for step in range(steps):
        output = method(views)
        losses.append(output.loss.item())
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        method.after_step(Clock(step, steps, steps))
    return losses


def fit_with_trainer(
    method: SSLMethod,
    optimizer: str,
    lr: float,
    weight_decay: float,
    views: list[torch.Tensor],
    run_dir: Path,
    steps: int = 1,
    observers: Sequence[Observer] = (),
) -> list[dict]:
    """``steps`` steps of the Trainer on ``views`` with ``make_optimizer(optimizer, ...)``,
    the learning rate ``lr`` on a cosine to 0 over the steps (no warm-up); the logged records."""
    schedule = Schedule(steps_per_epoch=steps, epochs=1, warmup_steps=0, base_lr=lr,
                        global_batch=len(views[0]), checkpoint_every=1000, log_every=1)  # fmt: skip
    trainer = Trainer(
        make_runtime("cpu", "fp32", 0),
        method,
        lambda model: make_optimizer(optimizer, model, lr, weight_decay),
        schedule,
        run_dir,
        {},
        (),
        observers,
    )
    trainer.fit(lambda step: views)
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]


def assert_close_by_name(
    actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], **tolerances: float
) -> None:
    """``torch.testing.assert_close`` of each named tensor, the name in the message."""
    assert actual.keys() == expected.keys()
    for name, tensor in actual.items():
        message = functools.partial("{}: {}".format, name)
        torch.testing.assert_close(tensor.detach(), expected[name], msg=message, **tolerances)


def official_first_lars_step(
    param: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float, eta: float = 1e-3
) -> torch.Tensor:
    """The first step (zero momentum buffer) of the LARS of the official code: a parameter
    with ndim 1 (bias, BatchNorm) gets neither weight decay nor the trust ratio
    (facebookresearch/barlowtwins main.py with ``weight_decay_filter`` and
    ``lars_adaptation_filter``, facebookresearch/moco-v3 moco/optimizer.py, deepmind-research
    byol/utils/optimizers.py with ``exclude_bias_and_norm``)."""
    if param.ndim != 1:
        grad = grad + weight_decay * param
        param_norm, grad_norm = param.norm(), grad.norm()
        if param_norm > 0 and grad_norm > 0:
            grad = grad * (eta * param_norm / grad_norm)
    return param - lr * grad
