"""What watches a run train, plugged into the engine's loop as observers:

- :class:`CollapseWatch`: std and effective rank of the global batch's embeddings at every
  logging step; warns (and with ``--stop-on-collapse`` stops) when they collapse;
- :class:`ProbeTraining`: one update of the online linear probe per step (``--online-probe``);
- :class:`EpochEvaluation`: every few epochs the encoder's features of the evaluation images
  (``--eval-dir``, or the un-augmented training images) give the kNN accuracy (k=200, T=0.1,
  cosine; against the training images when those are labelled, else leave-one-out) and the
  probe's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console

from sslcli.engine.collectives import gather
from sslcli.engine.contract import Logged, Observer, StepOutput
from sslcli.eval.collapse import CollapseMonitor, effective_rank, embedding_std

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from sslcli.engine.runtime import Runtime
    from sslcli.eval.online import OnlineProbe


class CollapseWatch(Observer):
    """Collapse metrics of the global batch (the same on every rank); rank 0 prints the
    warning when the monitor flags collapse."""

    def __init__(self, is_main: bool, stop_on_collapse: bool) -> None:
        self.monitor = CollapseMonitor()
        self.is_main = is_main
        self.stop_on_collapse = stop_on_collapse
        self.collapsed = False

    def on_log(self, step: int, output: StepOutput) -> Logged:
        everyone = gather(output.embeddings.float().contiguous())
        std, rank = embedding_std(everyone), effective_rank(everyone)
        warning = self.monitor.check(std, rank, *everyone.shape)
        if warning and self.is_main:
            Console(stderr=True).print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
        self.collapsed = warning is not None
        return Logged(
            {"embedding_std": std, "effective_rank": rank},
            {"std": f"{std:.3f}", "rank": f"{rank:.1f}"},
        )

    def stop_reason(self) -> tuple[str, str] | None:
        if not (self.collapsed and self.stop_on_collapse):
            return None
        return "the embeddings collapsed", "change the settings and start again"


class ProbeTraining(Observer):
    """The online probe's update on each step's detached features; its state is in the
    checkpoints, so a resumed run continues it exactly."""

    state_key = "probe"

    def __init__(self, probe: OnlineProbe) -> None:
        self.probe = probe

    def on_step(self, step: int, output: StepOutput) -> dict[str, torch.Tensor]:
        return self.probe.train_step(step, output.embeddings)

    def state(self) -> dict[str, Any]:
        return self.probe.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self.probe.load_state(state)


@dataclass(frozen=True)
class LabelledImages:
    pixels: np.ndarray
    """uint8 (N, H, W, 3), at the training resolution."""
    labels: torch.Tensor


class EpochEvaluation(Observer):
    """kNN (and probe) accuracy on the evaluation images, every ``every`` epochs and at the
    last; computed on the main process, whose figures are logged."""

    def __init__(
        self,
        evaluation: LabelledImages,
        reference: LabelledImages | None,
        every: int,
        epochs: int,
        runtime: Runtime,
        probe: OnlineProbe | None,
    ) -> None:
        self.evaluation = evaluation
        self.reference = reference
        self.every = every
        self.epochs = epochs
        self.runtime = runtime
        self.probe = probe

    def on_epoch_end(self, model: nn.Module, epoch: int) -> dict[str, float]:
        from sslcli.eval.features import extract_features
        from sslcli.eval.knn import knn_accuracy, leave_one_out_knn_accuracy

        if not self.runtime.is_main or (epoch % self.every and epoch != self.epochs):
            return {}
        backbone = model.get_submodule("backbone")
        features = extract_features(backbone, self.evaluation.pixels, self.runtime)
        labels = self.evaluation.labels
        if self.reference is None:
            result = {"knn_accuracy": leave_one_out_knn_accuracy(features, labels)}
        else:
            bank = extract_features(backbone, self.reference.pixels, self.runtime)
            result = {"knn_accuracy": knn_accuracy(bank, self.reference.labels, features, labels)}
        if self.probe is not None:
            result["probe_accuracy"] = self.probe.accuracy(features, labels)
        return result
