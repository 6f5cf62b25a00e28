"""Planning a run's length from a time budget: the arithmetic, and a planned run that trains
exactly what a run of that many steps trains (the timed steps leave no trace)."""

import json
import math
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from sslcli.engine.budget import Costs, TimeBudget, parse_duration, planned_steps
from sslcli.engine.contract import Clock, StepOutput
from sslcli.engine.optim import warmup_cosine
from sslcli.engine.runtime import make_runtime
from sslcli.engine.trainer import Schedule, Trainer
from sslcli.errors import SSLError


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45), (" 2m ", 120)]
)
def test_durations_are_read_in_seconds_minutes_and_hours(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10 minutes", "0s", "-5m", "m", ""])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(SSLError, match="is not a duration"):
        parse_duration(text)


def _cost(steps: int, costs: Costs, per_epoch: int, every_ckpt: int, every_eval: int | None):
    """The run's cost counted step by step, as the trainer spends it."""
    total = 0.0
    for step in range(1, steps + 1):
        total += costs.step
        last = step == steps
        if step % every_ckpt == 0 or last:
            total += costs.checkpoint
        epoch_end = step % per_epoch == 0 or last
        epoch = math.ceil(step / per_epoch)
        if every_eval is not None and epoch_end and (epoch % every_eval == 0 or last):
            total += costs.evaluation
    return total


@pytest.mark.parametrize("seconds", [0.5, 3.0, 17.3, 100.0, 1000.0])
@pytest.mark.parametrize("every_eval", [None, 1, 5])
def test_the_plan_is_the_most_steps_whose_whole_cost_fits(
    seconds: float, every_eval: int | None
) -> None:
    costs = Costs(step=0.25, checkpoint=0.4, evaluation=1.5)
    steps = planned_steps(seconds, costs, 7, 7, every_eval)
    if steps:
        assert _cost(steps, costs, 7, 7, every_eval) <= seconds
    assert _cost(steps + 1, costs, 7, 7, every_eval) > seconds


class Noisy(nn.Module):
    """A model whose step uses every kind of state the timed steps could leave behind:
    BatchNorm statistics, dropout's random draws, and AdamW's moments."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.3))

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        out = self.net(views[0])
        return StepOutput((out - views[0].sum(1, keepdim=True)).pow(2).mean(), out.detach())

    def begin_step(self, clock: Clock) -> None:
        pass

    def prepare_gradients(self, clock: Clock) -> None:
        pass

    def after_step(self, clock: Clock) -> None:
        pass


def _views(step: int) -> list[torch.Tensor]:
    return [torch.randn(16, 8, generator=torch.Generator().manual_seed(step))]


def _trainer(run: Path, schedule: Schedule, budget: TimeBudget | None) -> Trainer:
    torch.manual_seed(0)
    return Trainer(
        make_runtime("cpu", "fp32", 0),
        Noisy(),
        lambda model: torch.optim.AdamW(model.parameters(), lr=0.01),
        schedule,
        run,
        {},
        (),
        budget=budget,
    )


def test_a_planned_run_trains_what_a_run_of_its_steps_trains(
    tmp_path: Path,
) -> None:
    provisional = Schedule(steps_per_epoch=25, epochs=4, warmup_steps=10, base_lr=0.01,
                           global_batch=16, checkpoint_every=10**6)  # fmt: skip
    started = time.time()
    budget = TimeBudget(deadline=started + 3.0, warmup_share=0.2, evaluation_every=None)
    planned = _trainer(tmp_path / "a", provisional, budget)
    planned.fit(_views)
    took = time.time() - started
    steps, warmup = planned.schedule.total_steps, planned.schedule.warmup_steps
    # how close to its budget a run ends is the CLI test's (tests/training/test_time_budget);
    # here the sub-millisecond steps make the end sensitive to any other work on the machine
    assert steps > 10 and 0.5 * 3.0 <= took <= 2 * 3.0, (steps, took)
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").open()]
    first, again = (record["planned_steps"] for record in records if "planned_steps" in record)
    assert warmup == round(0.2 * first) and again == steps  # planned again after the warm-up
    assert planned.schedule.epochs == math.ceil(steps / 25)
    assert planned.config["steps"] == steps
    again = Schedule(steps_per_epoch=25, epochs=planned.schedule.epochs,
                     warmup_steps=warmup, base_lr=0.01, global_batch=16,
                     checkpoint_every=10**6, steps=steps)  # fmt: skip
    direct = _trainer(tmp_path / "b", again, None)
    direct.fit(_views)
    for name, value in direct.module.state_dict().items():
        assert torch.equal(planned.module.state_dict()[name], value), name
    assert planned.optimizer.state_dict()["state"][0]["step"] == steps
    last_lr = warmup_cosine(steps - 1, steps, warmup, 0.01)
    assert planned.optimizer.param_groups[0]["lr"] == pytest.approx(last_lr)


def test_a_budget_spent_before_the_first_step_is_a_clear_error(tmp_path: Path) -> None:
    schedule = Schedule(steps_per_epoch=5, epochs=1, warmup_steps=0, base_lr=0.01,
                        global_batch=16, checkpoint_every=5)  # fmt: skip
    budget = TimeBudget(deadline=time.time() - 1, warmup_share=0.1, evaluation_every=None)
    with pytest.raises(SSLError, match="less than one step") as raised:
        _trainer(tmp_path, schedule, budget).fit(_views)
    assert "--time-budget" in raised.value.hint
    assert not (tmp_path / "checkpoints").exists()
