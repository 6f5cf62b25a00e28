"""A run's length planned from a time budget (``--time-budget 10m``).

Before the first step the trainer times a few real steps in a sandbox (the weights, the
optimiser and the random state are put back afterwards), one checkpoint write, and what the
observers did before training (the kNN floors: about one evaluation). The run then takes the
most steps whose cost, with its evaluations and checkpoints, fits in what is left of the
budget; the schedule (warm-up, cosine, EMA momentum, teacher temperature) is laid over those
steps, so it completes when the budget ends.

The timed steps leave out what the loop does around a step (logging, the collapse metrics,
the progress bar), which on a small model is a good share of it. So the plan is made once
more, from the loop's own pace, when the warm-up ends (after 5 steps at least), where the
learning rate's cosine starts: the cosine is laid over the steps left, unbent. A machine
that slows down after that (another job on its cores) ends the run late.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

from sslcli.errors import runtime_error, usage_error

UNITS = {"s": 1, "m": 60, "h": 3600}
CALIBRATION_STEPS = 3
"""Steps timed (after one untimed step that warms caches and allocators)."""


@dataclass(frozen=True)
class TimeBudget:
    deadline: float
    """When the run must end, as ``time.time()``."""
    warmup_share: float
    """The share of the planned steps spent warming the learning rate up."""
    evaluation_every: int | None
    """Epochs between evaluations (and one at the end); None: the run evaluates nothing."""


@dataclass(frozen=True)
class Costs:
    """What the parts of a run cost, in seconds, as measured before the first step."""

    step: float
    checkpoint: float
    evaluation: float


@dataclass
class Pace:
    """The training loop's seconds per step, from its start, with the evaluations and the
    checkpoint writes (which a plan counts on their own) set aside."""

    started: float = field(default_factory=time.perf_counter)
    aside: float = 0.0

    def set_aside(self, seconds: float) -> None:
        self.aside += seconds

    def per_step(self, steps: int) -> float:
        return (time.perf_counter() - self.started - self.aside) / max(steps, 1)


def replan_step(planned: int, warmup_steps: int) -> int:
    """Where the plan is made again: the warm-up's end, and not before the loop has taken a
    few steps (5, or half of a shorter plan) to measure its pace on."""
    return max(1, warmup_steps, min(5, planned // 2))


def parse_duration(
    text: str, flag: str = "--time-budget", examples: str = "90s, 10m or 1.5h", zero: bool = False
) -> float:
    """``90s``, ``10m``, ``1.5h`` or a bare number of seconds, as seconds; above 0 (or 0
    itself where ``zero``)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", text)
    if not found or (float(found.group(1)) <= 0 and not zero):
        raise usage_error(f"{flag} {text!r} is not a duration", f"e.g. {flag} {examples}")
    return float(found.group(1)) * UNITS[found.group(2) or "s"]


def planned_steps(
    seconds: float,
    costs: Costs,
    steps_per_epoch: int,
    checkpoint_every: int,
    evaluation_every: int | None,
) -> int:
    """The most steps whose run (steps, a checkpoint every ``checkpoint_every`` steps and at
    the end, an evaluation every ``evaluation_every`` epochs and at the end) fits in
    ``seconds``; 0 when not even one step does."""

    def cost(steps: int) -> float:
        epochs = math.ceil(steps / steps_per_epoch)
        evaluations = 0
        if evaluation_every is not None:
            evaluations = epochs // evaluation_every + (1 if epochs % evaluation_every else 0)
        checkpoints = steps // checkpoint_every + (1 if steps % checkpoint_every else 0)
        return steps * costs.step + checkpoints * costs.checkpoint + evaluations * costs.evaluation

    low, high = 0, max(1, int(seconds / max(costs.step, 1e-9)))
    while low < high:  # the cost grows with the steps: the last that fits
        middle = (low + high + 1) // 2
        if cost(middle) <= seconds:
            low = middle
        else:
            high = middle - 1
    return low


def no_time_left(seconds: float, costs: Costs) -> Exception:
    return runtime_error(
        f"the time budget leaves {max(seconds, 0):.1f} s after start-up, less than one step "
        f"with its checkpoint and evaluation ({costs.step + costs.checkpoint:.1f} s + "
        f"{costs.evaluation:.1f} s); nothing was trained",
        "give a longer --time-budget, or --epochs instead",
    )
