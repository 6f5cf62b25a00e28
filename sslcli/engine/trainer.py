"""The training loop shared by every trainer: schedule, mixed precision, DDP, checkpoints,
resume, signals, non-finite losses, metrics and progress. It never knows which method or
data it trains: a step's views come from ``batches`` and its loss from the model.

Faults: Ctrl-C or SIGTERM finishes the step, writes a checkpoint and returns; a non-finite
loss stops with an error and leaves the last good checkpoint; every rank agrees on both
through one small all-reduce per step, so no rank waits for a peer that has stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sslcli.engine.batchnorm import synchronise_batchnorm
from sslcli.engine.checkpoint import check_compatible, load_checkpoint, save_run_checkpoint
from sslcli.engine.collectives import all_reduce_sum
from sslcli.engine.contract import Observer, StepOutput, Trainable
from sslcli.engine.metrics_log import MetricsLog
from sslcli.engine.optim import warmup_cosine
from sslcli.engine.prefetch import Prefetcher
from sslcli.engine.progress import progress_bar
from sslcli.engine.runtime import Runtime
from sslcli.engine.signals import catch_stop_signals
from sslcli.errors import runtime_error, usage_error

Batches = Callable[[int], list[torch.Tensor]]
"""``batches(step)``: this rank's views for a global step, on the runtime's device."""


@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    epochs: int
    warmup_steps: int
    base_lr: float
    global_batch: int
    checkpoint_every: int
    log_every: int = 10

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


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
    ) -> None:
        """``module`` has the :class:`~sslcli.engine.contract.Trainable` shape; ``config`` is
        saved in every checkpoint, and ``resume_keys`` of it must match on resume."""
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

    def resume(self, checkpoint_path: Path) -> None:
        checkpoint = load_checkpoint(checkpoint_path)
        state = checkpoint.trainer_state or {}
        if "optimizer" not in state:
            raise usage_error(
                f"{checkpoint_path} is not a training checkpoint (it holds no trainer state)",
                "give the run folder or one of its checkpoints/step-* folders",
            )
        check_compatible(checkpoint.config, self.config, self.resume_keys)
        self.module.load_state_dict(checkpoint.weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        for observer in self.observers:
            if observer.state_key is not None and observer.state_key in state:
                observer.load_state(state[observer.state_key])
        if self.runtime.is_main:
            self.metrics_log.forget_after(self.step)

    def _save(self) -> Path | None:
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
        config = {**self.config, "step": self.step}
        try:
            return save_run_checkpoint(
                self.run_dir, self.step, self.module.state_dict(), config, state
            )
        except OSError as error:
            raise runtime_error(
                f"cannot write a checkpoint in {self.run_dir}: {error}",
                "free disk space, then --resume from the last checkpoint",
            ) from error

    def fit(self, batches: Batches) -> TrainResult:
        schedule, runtime = self.schedule, self.runtime
        last: dict[str, float] = {}
        window = _Window()
        shown: dict[str, str] = {}
        prefetcher = Prefetcher(batches, runtime.device)
        with (
            catch_stop_signals() as stop,
            progress_bar("train", schedule.total_steps, "step", enabled=runtime.is_main) as bar,
            closing(prefetcher),
        ):
            bar.advance(self.step)
            while self.step < schedule.total_steps:
                lr = warmup_cosine(
                    self.step, schedule.total_steps, schedule.warmup_steps, schedule.base_lr
                )
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                started = time.perf_counter()
                following = self.step + 1 if self.step + 1 < schedule.total_steps else None
                views = prefetcher.get(self.step, following)
                loaded = time.perf_counter()
                output = self._train_step(views)
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
                    raise runtime_error(
                        f"the loss became {mean_loss} at step {self.step + 1}; training stopped",
                        f"the last good checkpoint is in {self.run_dir / 'checkpoints'}; "
                        "lower --lr or use --precision fp32, then --resume",
                    )
                self.step += 1
                window.add(time.perf_counter() - started, loaded - started, schedule.global_batch)
                extra_metrics = dict(zip(output.metrics, extra, strict=True))
                metrics = {"loss": mean_loss, "lr": lr, **extra_metrics}
                if self.step % schedule.log_every == 0 or self.step == schedule.total_steps:
                    logged = [observer.on_log(self.step, output) for observer in self.observers]
                    shown = {name: text for part in logged for name, text in part.shown.items()}
                    shown |= {name: f"{value:.3g}" for name, value in extra_metrics.items()}
                    metrics |= window.summary()
                    metrics |= {name: v for part in logged for name, v in part.metrics.items()}
                    self._log({"step": self.step} | metrics)
                if self.step % schedule.steps_per_epoch == 0:
                    epoch = self.step // schedule.steps_per_epoch
                    epoch_metrics: dict[str, float] = {}
                    for observer in self.observers:
                        epoch_metrics |= observer.on_epoch_end(self.module, epoch)
                    if epoch_metrics:
                        last |= epoch_metrics
                        self._log({"step": self.step, "epoch": epoch} | epoch_metrics)
                last |= metrics
                bar.advance(1, loss=mean_loss, lr=lr, **shown, **window.short())
                finished = self.step == schedule.total_steps
                if stopping or finished or self.step % schedule.checkpoint_every == 0:
                    self._save()
                reason = next(filter(None, (o.stop_reason() for o in self.observers)), None)
                if reason is not None:
                    self._save()
                    message, hint = reason
                    raise runtime_error(
                        f"stopped at step {self.step}: {message}",
                        f"the checkpoint is in {self.run_dir / 'checkpoints'}; {hint}",
                    )
                if stopping and not finished:
                    return TrainResult(self.step, True, last)
        return TrainResult(self.step, False, last)

    def _train_step(self, views: list[torch.Tensor]) -> StepOutput:
        self.model.train()
        with self.runtime.autocast():
            output = self.model(views)
        self.scaler.scale(output.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.module.after_step((self.step + 1) / self.schedule.total_steps)
        return output

    def _log(self, record: dict[str, Any]) -> None:
        if self.runtime.is_main:
            self.metrics_log.append(record)


class _Window:
    """Throughput and data-wait share over the steps since the last summary."""

    def __init__(self) -> None:
        self.seconds = self.waiting = 0.0
        self.images = 0

    def add(self, seconds: float, waiting: float, images: int) -> None:
        self.seconds += seconds
        self.waiting += waiting
        self.images += images

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
