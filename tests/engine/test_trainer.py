"""The train loop's fault handling, on a model whose weights follow a known path."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from sslcli.engine.contract import Clock, StepOutput
from sslcli.engine.optim import make_optimizer
from sslcli.engine.runtime import make_runtime
from sslcli.engine.trainer import Schedule, Trainer
from sslcli.errors import SSLError

SCALE, LR = 10.0, 0.01


class Runaway(nn.Module):
    """loss = -exp(SCALE * w): each SGD step raises w by LR * SCALE * exp(SCALE * w), so w
    runs away, and the loss overflows to -inf once SCALE * w passes float32's ~88.7."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        loss = -torch.exp(SCALE * self.w) + 0 * views[0].sum()
        return StepOutput(loss, views[0].detach())

    def begin_step(self, clock: Clock) -> None:
        pass

    def prepare_gradients(self, clock: Clock) -> None:
        pass

    def after_step(self, clock: Clock) -> None:
        pass


STEPS = 10


def _path_of_w(steps: int) -> list[float]:
    """w after each step, computed directly from SGD's rule (float64), with the cosine
    learning rate of a 10-step schedule without warm-up."""
    w, path = 0.0, []
    for step in range(steps):
        lr = 0.5 * LR * (1 + math.cos(math.pi * step / STEPS))
        w += lr * SCALE * math.exp(min(SCALE * w, 700.0))
        path.append(w)
    return path


def _trainer(run: Path) -> Trainer:
    schedule = Schedule(steps_per_epoch=STEPS, epochs=1, warmup_steps=0, base_lr=LR,
                        global_batch=4, checkpoint_every=1)  # fmt: skip
    return Trainer(
        make_runtime("cpu", "fp32", 0),
        Runaway(),
        lambda model: torch.optim.SGD(model.parameters(), lr=LR),
        schedule,
        run,
        {},
        (),
    )


def _views(step: int) -> list[torch.Tensor]:
    return [torch.ones(4, 2)]


def test_a_diverged_run_keeps_the_checkpoint_from_before_the_bad_step(tmp_path: Path) -> None:
    path = _path_of_w(5)
    # steps 1-4 give finite losses; step 4's update sends w to about 1.3e18, and step 5's
    # loss is -inf: the weights of step 4 are diverged though finite
    assert [SCALE * w < 88 for w in path] == [True, True, True, False, False]
    with pytest.raises(SSLError, match="at step 5") as raised:
        _trainer(tmp_path).fit(_views)
    kept = load_checkpoint(resolve_resume(tmp_path))
    assert kept.trainer_state["step"] == 3
    assert kept.weights["w"].item() == pytest.approx(path[2], rel=1e-5)
    assert "step 3" in raised.value.hint


def test_a_loss_that_is_not_finite_changes_no_weight(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    with pytest.raises(SSLError, match="loss became"):
        trainer.fit(_views)
    # the failing step's gradient (inf) never reached the weights or the optimiser
    assert trainer.module.w.item() == pytest.approx(_path_of_w(4)[3], rel=1e-5)


def test_a_run_that_diverges_before_any_checkpoint_says_so(tmp_path: Path) -> None:
    class AtOnce(Runaway):
        def forward(self, views: list[torch.Tensor]) -> StepOutput:
            return StepOutput(torch.tensor(float("nan")) + 0 * self.w, views[0])

    trainer = _trainer(tmp_path)
    trainer = Trainer(
        make_runtime("cpu", "fp32", 0),
        AtOnce(),
        lambda model: make_optimizer("sgd", model, LR, 0.0),
        trainer.schedule,
        tmp_path,
        {},
        (),
    )
    with pytest.raises(SSLError, match="at step 1") as raised:
        trainer.fit(_views)
    assert "no checkpoint" in raised.value.hint
    assert not (tmp_path / "checkpoints").exists()


def test_a_checkpoint_that_does_not_fit_the_model_or_optimiser_is_refused_clearly(
    tmp_path: Path,
) -> None:
    class Wider(Runaway):
        def __init__(self) -> None:
            super().__init__()
            self.extra = nn.Parameter(torch.zeros(3))

    short = Schedule(steps_per_epoch=2, epochs=1, warmup_steps=0, base_lr=LR, global_batch=4,
                     checkpoint_every=1)  # fmt: skip
    runtime = make_runtime("cpu", "fp32", 0)
    sgd = lambda model: torch.optim.SGD(model.parameters(), lr=LR)  # noqa: E731
    Trainer(runtime, Runaway(), sgd, short, tmp_path, {}, ()).fit(_views)
    checkpoint = resolve_resume(tmp_path)
    with pytest.raises(SSLError, match="do not fit this run's model") as raised:
        Trainer(runtime, Wider(), sgd, short, tmp_path / "b", {}, ()).resume(checkpoint)
    assert raised.value.exit_code == 2

    def two_groups(model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD([{"params": [model.w]}, {"params": []}], lr=LR)

    with pytest.raises(SSLError, match=r"the optimiser state in .* does not fit this run"):
        Trainer(runtime, Runaway(), two_groups, short, tmp_path / "c", {}, ()).resume(checkpoint)


def test_each_step_is_followed_by_its_own_clock_whose_progress_starts_at_0(
    tmp_path: Path,
) -> None:
    """The EMA schedules take k / K after step k (BYOL's and DINO's), from the clock the
    trainer hands over after each optimiser step."""

    class Steady(Runaway):
        def __init__(self) -> None:
            super().__init__()
            self.clocks: list[Clock] = []

        def forward(self, views: list[torch.Tensor]) -> StepOutput:
            return StepOutput((self.w - 1) ** 2 + 0 * views[0].sum(), views[0].detach())

        def after_step(self, clock: Clock) -> None:
            self.clocks.append(clock)

    schedule = Schedule(steps_per_epoch=2, epochs=2, warmup_steps=0, base_lr=LR,
                        global_batch=4, checkpoint_every=10)  # fmt: skip
    model = Steady()
    optimizer = lambda module: torch.optim.SGD(module.parameters(), lr=LR)  # noqa: E731
    Trainer(make_runtime("cpu", "fp32", 0), model, optimizer, schedule, tmp_path, {}, ()).fit(
        _views
    )
    assert [clock.step for clock in model.clocks] == [0, 1, 2, 3]
    assert [clock.progress for clock in model.clocks] == [0.0, 0.25, 0.5, 0.75]
