"""The training loop shared by every trainer: schedule, mixed precision, DDP, checkpoints,
resume, signals, non-finite losses, metrics and progress. It never knows which method or
data it trains: a step's views come from ``batches`` and its loss from the model.

Faults: Ctrl-C or SIGTERM finishes the step, writes a checkpoint and returns. A non-finite
loss stops with :class:`Diverged` before the optimiser, the EMA targets or an observer's
state take the step. A periodic checkpoint is written one step late, once the next step's
loss has shown its weights are sound: weights that ran away (finite, but giving a non-finite
loss at the next step) are never kept as "the last good checkpoint". Every rank agrees on
both through one small all-reduce per step, so no rank waits for a peer that has stopped.
"""

from __future__ import annotations

import copy
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sslcli.engine.atomic import write_failure
from sslcli.engine.batchnorm import synchronise_batchnorm
from sslcli.engine.budget import (
    CALIBRATION_STEPS,
    Costs,
    Pace,
    TimeBudget,
    no_time_left,
    planned_steps,
    replan_step,
)
from sslcli.engine.checkpoint import (
    check_compatible,
    load_checkpoint,
    save_checkpoint,
    save_run_checkpoint,
)
from sslcli.engine.collectives import all_reduce_sum
from sslcli.engine.contract import Clock, Observer, StepOutput, Trainable
from sslcli.engine.metrics_log import MetricsLog
from sslcli.engine.optim import set_learning_rates, set_weight_decays, warmup_cosine
from sslcli.engine.prefetch import Prefetcher
from sslcli.engine.progress import progress_bar
from sslcli.engine.runtime import Runtime
from sslcli.engine.signals import catch_stop_signals
from sslcli.errors import RUNTIME_EXIT_CODE, SSLError, runtime_error, usage_error

Batches = Callable[[int], list[torch.Tensor]]
"""``batches(step)``: this rank's views for a global step, on the runtime's device."""


class Diverged(SSLError):
    """The loss became non-finite at ``step`` (1-based); ``last_good`` is the step of the
    newest checkpoint whose weights gave a finite loss (None: none was written)."""

    def __init__(self, step: int, loss: float, last_good: int | None, checkpoints: Path) -> None:
        where = (
            f"the last good checkpoint is step {last_good} in {checkpoints}"
            if last_good is not None
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"the loss became {loss} at step {step}; training stopped",
            where,
            exit_code=RUNTIME_EXIT_CODE,
        )
        self.step = step
        self.last_good = last_good


class RecordMirror(Protocol):
    """A view of ``metrics.jsonl`` kept as the run goes (``engine.tensorboard``)."""

    def append(self, record: dict[str, Any]) -> None: ...


@dataclass
class _Following:
    """A planned run's plan as it goes: its budget, the costs measured before it, the step
    it is first planned again at, and the loop's pace."""

    budget: TimeBudget
    costs: Costs
    first: int
    pace: Pace = field(default_factory=Pace)


@dataclass
class _Snapshot:
    """A checkpoint's contents copied to the CPU, waiting for the next step to vouch for it."""

    step: int
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]


@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    epochs: int
    warmup_steps: int
    base_lr: float
    global_batch: int
    checkpoint_every: int
    log_every: int = 10
    weight_decay: float = 0.0
    final_weight_decay: float | None = None
    """A cosine from ``weight_decay`` to this over the run (DINO's); None: left constant."""
    steps: int | None = None
    """The run's length in steps when a time budget planned it (None: whole epochs)."""

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else self.steps_per_epoch * self.epochs

    def clock(self, step: int) -> Clock:
        return Clock(step, self.total_steps, self.steps_per_epoch)

    def decay_at(self, step: int) -> float | None:
        """The weight decay of ``step`` when it is scheduled."""
        if self.final_weight_decay is None:
            return None
        return warmup_cosine(
            step, self.total_steps, 0, self.weight_decay, final_lr=self.final_weight_decay
        )


@dataclass
class TrainResult:
    step: int
    interrupted: bool
    last: dict[str, float]


class Trainer:
    def __init__(
        self,
        runtime: Runtime,
        module: nn.Module,
        optimizer_factory: Callable[[nn.Module], torch.optim.Optimizer],
        schedule: Schedule,
        run_dir: Path,
        config: dict[str, Any],
        resume_keys: tuple[str, ...],
        observers: Sequence[Observer] = (),
        budget: TimeBudget | None = None,
    ) -> None:
        """``module`` has the :class:`~sslcli.engine.contract.Trainable` shape; ``config`` is
        saved in every checkpoint, and ``resume_keys`` of it must match on resume. With a
        ``budget``, a fresh run plans its length from it before the first step (and the
        config it saves records ``steps`` and ``epochs``)."""
        self.runtime = runtime
        self.schedule = schedule
        self.run_dir = run_dir
        if runtime.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.resume_keys = resume_keys
        module = module.to(runtime.device)
        if runtime.distributed:
            module = synchronise_batchnorm(module, runtime.device)
        self.module = module
        """The trained module itself (``model`` is it wrapped for DDP when distributed)."""
        ids = [runtime.local_rank] if runtime.device.type == "cuda" else None
        self.model: Trainable = (
            DistributedDataParallel(module, device_ids=ids) if runtime.distributed else module
        )
        self.optimizer = optimizer_factory(module)
        self.scaler = torch.amp.GradScaler(enabled=runtime.precision == "fp16")
        self.step = 0
        self.observers = list(observers)
        self.metrics_log = MetricsLog(run_dir)
        self.mirrors: list[RecordMirror] = []
        """Where the main process's records also go (TensorBoard), after ``metrics.jsonl``."""
        self.last_saved: int | None = None
        """The step of the newest checkpoint written (or resumed from)."""
        self.budget = budget
        self._plan_state: _Following | None = None

    def resume(self, checkpoint_path: Path) -> None:
        checkpoint = load_checkpoint(checkpoint_path)
        state = checkpoint.trainer_state or {}
        if "optimizer" not in state:
            raise usage_error(
                f"{checkpoint_path} holds no optimiser state to resume",
                "give the run folder or one of its checkpoints/step-* folders",
            )
        check_compatible(checkpoint.config, self.config, self.resume_keys)
        step = int(state["step"])
        if step > self.schedule.total_steps:
            raise usage_error(
                f"{checkpoint_path} is at step {step}, past the {self.schedule.total_steps} "
                "steps of this run's schedule",
                "give more epochs to continue it",
            )
        older = "was it written by another version of sslcli?"
        try:
            self.module.load_state_dict(checkpoint.weights)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise usage_error(
                f"the weights in {checkpoint_path} do not fit this run's model: {first}", older
            ) from None
        # the moments come from the checkpoint, the hyper-parameters from this run's settings
        # (a resumed run may change its weight decay, say)
        hyper = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as error:
            raise usage_error(
                f"the optimiser state in {checkpoint_path} does not fit this run's ({error})",
                older,
            ) from None
        for group, settings in zip(self.optimizer.param_groups, hyper, strict=True):
            group.update(settings)
        self.scaler.load_state_dict(state["scaler"])
        self.step = step
        self.last_saved = self.step
        for observer in self.observers:
            if observer.state_key is not None and observer.state_key in state:
                observer.load_state(state[observer.state_key])
        if self.runtime.is_main:
            self.metrics_log.forget_after(self.step)

    def _snapshot(self) -> _Snapshot | None:
        """This step's checkpoint contents, copied (the main process alone writes them)."""
        if not self.runtime.is_main:
            return None
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        for observer in self.observers:
            if observer.state_key is not None:
                state[observer.state_key] = observer.state()
        return _Snapshot(self.step, _cpu_copy(self.module.state_dict()), _cpu_copy(state))

    def _write(self, snapshot: _Snapshot | None) -> None:
        if snapshot is None:
            return
        config = {**self.config, "step": snapshot.step}
        try:
            save_run_checkpoint(
                self.run_dir, snapshot.step, snapshot.weights, config, snapshot.state
            )
        except OSError as error:
            last = self.last_saved
            kept = f"last checkpoint step {last}" if last is not None else "no checkpoint yet"
            raise runtime_error(
                f"{write_failure(self.run_dir, error)}; {kept}",
                f"free space, then resume from {self.run_dir}"
                if last is not None
                else "free space, then start again",
            ) from None
        self.last_saved = snapshot.step

    def _save(self) -> None:
        self._write(self._snapshot())

    def fit(self, batches: Batches) -> TrainResult:
        schedule, runtime = self.schedule, self.runtime
        last: dict[str, float] = {}
        window = _Window()
        shown: dict[str, str] = {}
        pending: _Snapshot | None = None
        prefetcher = Prefetcher(batches, runtime.device)
        with (
            catch_stop_signals() as stop,
            progress_bar("train", schedule.total_steps, "step", enabled=runtime.is_main) as bar,
            closing(prefetcher),
        ):
            bar.advance(self.step)
            started_with: dict[str, float] = {}
            observed = time.perf_counter()
            for observer in self.observers:
                started_with |= observer.on_start(self.module)
            if self.budget is not None and self.step == 0:
                evaluation = time.perf_counter() - observed  # the floors: about one evaluation
                schedule, costs = self._plan(self.budget, prefetcher, evaluation)
                bar.set_total(schedule.total_steps)
                started_with |= {
                    "planned_steps": float(schedule.total_steps),
                    "step_seconds": costs.step,
                    "checkpoint_seconds": costs.checkpoint,
                    "evaluation_seconds": costs.evaluation,
                }
                self._plan_state = _Following(
                    self.budget, costs, replan_step(schedule.total_steps, schedule.warmup_steps)
                )
            pace = self._plan_state.pace if self._plan_state is not None else Pace()
            if started_with:
                last |= started_with
                self._log({"step": self.step} | started_with)
            while self.step < schedule.total_steps:
                lr = warmup_cosine(
                    self.step, schedule.total_steps, schedule.warmup_steps, schedule.base_lr
                )
                set_learning_rates(self.optimizer, lr, schedule.base_lr)
                decay = schedule.decay_at(self.step)
                if decay is not None:
                    set_weight_decays(self.optimizer, decay)
                started = time.perf_counter()
                following = self.step + 1 if self.step + 1 < schedule.total_steps else None
                views = prefetcher.get(self.step, following)
                loaded = time.perf_counter()
                output = self._forward_backward(views)
                for observer in self.observers:
                    output.metrics |= observer.on_step(self.step, output)
                loss = output.loss.detach().float()
                flags = torch.stack(
                    [
                        (~torch.isfinite(loss)).float(),
                        torch.tensor(float(stop.requested), device=loss.device),
                        loss,
                        *(value.float() for value in output.metrics.values()),
                    ]
                )
                flags = all_reduce_sum(flags) if runtime.distributed else flags
                nonfinite, stopping, mean_loss, *extra = (
                    torch.cat([flags[:2], flags[2:] / runtime.world_size])
                ).tolist()
                if nonfinite:
                    raise Diverged(
                        self.step + 1, mean_loss, self.last_saved, self.run_dir / "checkpoints"
                    )
                aside = time.perf_counter()
                self._write(pending)  # this step's finite loss vouches for those weights
                pending = None
                pace.set_aside(time.perf_counter() - aside)
                self._update()
                self.step += 1
                window.add(time.perf_counter() - started, loaded - started, schedule.global_batch)
                extra_metrics = dict(zip(output.metrics, extra, strict=True))
                metrics = {"loss": mean_loss, "lr": lr, **extra_metrics}
                if decay is not None:
                    metrics["weight_decay"] = decay
                if self._plan_state is not None:
                    planned = self._follow_plan(self._plan_state)
                    if planned is not None:
                        schedule = planned
                        bar.set_total(schedule.total_steps)
                        metrics["planned_steps"] = float(schedule.total_steps)
                replanned = "planned_steps" in metrics
                if (
                    self.step % schedule.log_every == 0
                    or self.step == schedule.total_steps
                    or replanned
                ):
                    logged = [observer.on_log(self.step, output) for observer in self.observers]
                    shown = {name: text for part in logged for name, text in part.shown.items()}
                    shown |= {name: f"{value:.3g}" for name, value in extra_metrics.items()}
                    metrics |= window.summary()
                    metrics |= {name: v for part in logged for name, v in part.metrics.items()}
                    self._log({"step": self.step} | metrics)
                finished = self.step == schedule.total_steps
                aside = time.perf_counter()
                if self.step % schedule.steps_per_epoch == 0 or finished:
                    epoch = -(-self.step // schedule.steps_per_epoch)  # the last may be partial
                    epoch_metrics: dict[str, float] = {}
                    for observer in self.observers:
                        epoch_metrics |= observer.on_epoch_end(self.module, epoch, finished)
                    if epoch_metrics:
                        last |= epoch_metrics
                        self._log({"step": self.step, "epoch": epoch} | epoch_metrics)
                pace.set_aside(time.perf_counter() - aside)
                last |= metrics
                bar.advance(1, loss=mean_loss, lr=lr, **shown, **window.short())
                aside = time.perf_counter()
                if stopping or finished:
                    self._save()
                elif self.step % schedule.checkpoint_every == 0:
                    pending = self._snapshot()
                pace.set_aside(time.perf_counter() - aside)
                reason = next(filter(None, (o.stop_reason() for o in self.observers)), None)
                if reason is not None:
                    self._save()
                    message, hint = reason
                    raise runtime_error(
                        f"stopped at step {self.step}: {message}",
                        f"the checkpoint is in {self.run_dir / 'checkpoints'}; {hint}",
                    )
                if stopping and not finished:
                    return TrainResult(self.step, True, last | window.run_summary())
        return TrainResult(self.step, False, last | window.run_summary())

    def _plan(
        self, budget: TimeBudget, prefetcher: Prefetcher, evaluation: float
    ) -> tuple[Schedule, Costs]:
        """Lay the schedule over the most steps that fit in what is left of ``budget``, from
        the measured costs of a step, a checkpoint and an evaluation (the most over ranks)."""
        step, checkpoint = self._calibrate(prefetcher)
        *measured, late = self._most_over_ranks(
            step, checkpoint, evaluation, time.time() - budget.deadline
        )
        costs = Costs(*measured)
        schedule = self.schedule
        steps = planned_steps(
            -late,
            costs,
            schedule.steps_per_epoch,
            schedule.checkpoint_every,
            budget.evaluation_every,
        )
        if steps == 0:
            raise no_time_left(-late, costs)
        return self._planned(steps, warmup_steps=round(steps * budget.warmup_share)), costs

    def _follow_plan(self, following: _Following) -> Schedule | None:
        """At the warm-up's end, the steps left planned again at the loop's own pace (the
        most over ranks), the steps done and the warm-up kept; None at the other steps."""
        if self.step != following.first:
            return None
        budget, schedule = following.budget, self.schedule
        pace, late = self._most_over_ranks(
            following.pace.per_step(self.step), time.time() - budget.deadline
        )
        left = planned_steps(
            -late,
            replace(following.costs, step=pace),
            schedule.steps_per_epoch,
            schedule.checkpoint_every,
            budget.evaluation_every,
        )
        return self._planned(self.step + left)

    def _most_over_ranks(self, *values: float) -> list[float]:
        """Each value's largest over the ranks (every rank plans alike)."""
        measured = torch.tensor(values, dtype=torch.float64)
        if self.runtime.distributed:
            torch.distributed.all_reduce(measured, op=torch.distributed.ReduceOp.MAX)
        return measured.tolist()

    def _planned(self, steps: int, **changes: int) -> Schedule:
        """The schedule laid over ``steps`` (its last epoch maybe partial), also in the config
        the checkpoints record."""
        epochs = -(-steps // self.schedule.steps_per_epoch)
        self.schedule = replace(self.schedule, steps=steps, epochs=epochs, **changes)
        self.config = {**self.config, "steps": steps, "epochs": epochs}
        return self.schedule

    def _calibrate(self, prefetcher: Prefetcher) -> tuple[float, float]:
        """(seconds a step takes, seconds a checkpoint takes) on this rank, timed on real
        steps and a real checkpoint write whose effects are then undone: the weights, the
        optimiser, the scaler and the random state are as before."""
        weights = _cpu_copy(self.module.state_dict())
        optimizer = copy.deepcopy(self.optimizer.state_dict())
        scaler = self.scaler.state_dict()
        random = torch.random.get_rng_state()
        devices = [self.runtime.device] if self.runtime.device.type == "cuda" else []
        cuda_random = [torch.cuda.get_rng_state(device) for device in devices]
        seconds = []
        for step in range(CALIBRATION_STEPS + 1):
            started = time.perf_counter()
            following = step + 1 if step < CALIBRATION_STEPS else None
            self._forward_backward(prefetcher.get(step, following))
            self._update()
            if devices:
                torch.cuda.synchronize(self.runtime.device)
            seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        snapshot = self._snapshot()
        if snapshot is not None:
            probe = self.run_dir / ".time-budget-probe"
            save_checkpoint(probe, snapshot.weights, self.config, snapshot.state)
            shutil.rmtree(probe)
        checkpoint = time.perf_counter() - started
        self.module.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer)
        self.scaler.load_state_dict(scaler)
        torch.random.set_rng_state(random)
        for device, state in zip(devices, cuda_random, strict=True):
            torch.cuda.set_rng_state(state, device)
        return statistics.median(seconds[1:]), checkpoint

    def _forward_backward(self, views: list[torch.Tensor]) -> StepOutput:
        self.model.train()
        self.module.begin_step(self.schedule.clock(self.step))
        with self.runtime.autocast():
            output = self.model(views)
        self.scaler.scale(output.loss).backward()
        return output

    def _update(self) -> None:
        self.scaler.unscale_(self.optimizer)
        self.module.prepare_gradients(self.schedule.clock(self.step))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.module.after_step(self.schedule.clock(self.step))

    def _log(self, record: dict[str, Any]) -> None:
        if self.runtime.is_main:
            self.metrics_log.append(record)
            for mirror in self.mirrors:
                mirror.append(record)


class _Window:
    """Throughput and data-wait share over the steps since the last summary, and over the
    whole of this process's run."""

    def __init__(self) -> None:
        self.seconds = self.waiting = 0.0
        self.images = 0
        self.run_seconds = self.run_waiting = 0.0
        self.run_images = 0

    def add(self, seconds: float, waiting: float, images: int) -> None:
        self.seconds += seconds
        self.waiting += waiting
        self.images += images
        self.run_seconds += seconds
        self.run_waiting += waiting
        self.run_images += images

    def short(self) -> dict[str, str]:
        if not self.seconds:
            return {}
        return {
            "img/s": f"{self.images / self.seconds:.0f}",
            "data": f"{self.waiting / self.seconds:.0%}",
        }

    def summary(self) -> dict[str, float]:
        result = {
            "images_per_s": self.images / self.seconds,
            "data_wait": self.waiting / self.seconds,
        }
        self.seconds = self.waiting = 0.0
        self.images = 0
        return result

    def run_summary(self) -> dict[str, float]:
        """The run's mean throughput (images over the steps' seconds), for its result."""
        if not self.run_seconds:
            return {}
        return {
            "images_per_s": self.run_images / self.run_seconds,
            "data_wait": self.run_waiting / self.run_seconds,
            "train_seconds": self.run_seconds,
            "images_seen": self.run_images,
        }


def _cpu_copy(value: Any) -> Any:
    """``value`` with every tensor in it cloned to the CPU (state dicts hold live tensors)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(item) for item in value)
    return value
