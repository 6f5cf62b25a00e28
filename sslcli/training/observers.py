"""What watches a run train, plugged into the engine's loop as observers:

- :class:`CollapseWatch`: std and effective rank of the global batch's embeddings at every
  logging step; warns (and with ``--stop-on-collapse`` stops) when they collapse;
- :class:`ProbeTraining`: one update of the online linear probe per step (``--online-probe``);
- :class:`HeldOutEnergy`: a latent model's E(z = 0), F and z-gap on the evaluation images,
  at the epochs the kNN evaluation runs;
- :class:`EpochEvaluation`: every few epochs the encoder's features of the evaluation images
  (``--eval-dir``, or the un-augmented training images) give the kNN accuracy (k=200, T=0.1,
  cosine; against the training images when those are labelled, else leave-one-out) and the
  probe's accuracy; before training, the same kNN on the raw pixels and on the untrained
  encoder: the floors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from rich.console import Console
from torch import nn

from sslcli.engine.collectives import gather
from sslcli.engine.contract import Logged, Observer, StepOutput
from sslcli.eval.collapse import CollapseMonitor, effective_rank, embedding_std

if TYPE_CHECKING:
    from sslcli.engine.runtime import Runtime
    from sslcli.eval.online import OnlineProbe


RAW_FLOOR_VALUES = 64 * 2**20
"""The raw-pixel floor is measured when the pixels compared hold at most this many values
(64 Mi: 4000 images at 32 px hold 12 Mi; 10^4 photos at 224 px would hold 1.5 Gi)."""


class CollapseWatch(Observer):
    """Collapse metrics of the global batch (the same on every rank); rank 0 prints the
    warning when the monitor flags collapse. The first step's rank (the untrained
    network's) is the start that a dimensional collapse is measured from."""

    state_key = "collapse"

    def __init__(self, is_main: bool, stop_on_collapse: bool) -> None:
        self.monitor = CollapseMonitor()
        self.is_main = is_main
        self.stop_on_collapse = stop_on_collapse
        self.collapsed = False

    def on_step(self, step: int, output: StepOutput) -> dict[str, torch.Tensor]:
        if not self.monitor.peak_rank:
            self.monitor.note(effective_rank(_global(output.embeddings)))
        return {}

    def on_log(self, step: int, output: StepOutput) -> Logged:
        everyone = _global(output.embeddings)
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

    def state(self) -> dict[str, float]:
        return {"peak_rank": self.monitor.peak_rank, "low_checks": self.monitor.low_checks}

    def load_state(self, state: dict[str, float]) -> None:
        self.monitor.peak_rank = float(state["peak_rank"])
        self.monitor.low_checks = int(state["low_checks"])


def _global(embeddings: torch.Tensor) -> torch.Tensor:
    """Every rank's embeddings of the step, in rank order."""
    return gather(embeddings.float().contiguous())


HELD_OUT_IMAGES = 256
"""At most this many evaluation images (the first ones) give the held-out energies."""


@runtime_checkable
class MeasuresHeldOut(Protocol):
    """A model whose energies can be measured on images it does not train on."""

    def held_out(self, images: torch.Tensor) -> dict[str, float]: ...


class HeldOutEnergy(Observer):
    """A latent model's energies on evaluation images (``held_out``: E(z = 0), F and the
    z-gap), at the epochs the kNN evaluation runs; on the main process."""

    def __init__(self, evaluation: LabelledImages, every: int, runtime: Runtime) -> None:
        self.evaluation = evaluation
        self.every = every
        self.runtime = runtime

    def on_epoch_end(self, model: nn.Module, epoch: int, last: bool) -> dict[str, float]:
        if not self.runtime.is_main or (epoch % self.every and not last):
            return {}
        from sslcli.eval.features import pixels_to_batch

        images = pixels_to_batch(self.evaluation.pixels[:HELD_OUT_IMAGES], self.runtime.device)
        with self.runtime.autocast():
            return model.held_out(images)


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
    last; computed on the main process, whose figures are logged. Before the first step it
    measures the two floors a result must beat: kNN on the raw pixels and on the untrained
    encoder (kept in the checkpoints, so a resumed run still reports them)."""

    state_key = "floors"

    def __init__(
        self,
        evaluation: LabelledImages,
        reference: LabelledImages | None,
        every: int,
        runtime: Runtime,
        probe: OnlineProbe | None,
    ) -> None:
        self.evaluation = evaluation
        self.reference = reference
        self.every = every
        self.runtime = runtime
        self.probe = probe
        self.floors: dict[str, float] = {}

    def on_start(self, model: nn.Module) -> dict[str, float]:
        if self.runtime.is_main and not self.floors:
            untrained = self._features(model.get_submodule("backbone"))
            self.floors = {"knn_random_init": self._knn(*untrained)}
            if sum(images.size for images in self._pixels()) <= RAW_FLOOR_VALUES:
                self.floors["knn_raw_pixels"] = self._knn(*(_flat(p) for p in self._pixels()))
        return dict(self.floors)

    def on_epoch_end(self, model: nn.Module, epoch: int, last: bool) -> dict[str, float]:
        if not self.runtime.is_main or (epoch % self.every and not last):
            return {}
        features, bank = self._features(model.get_submodule("backbone"))
        result = {"knn_accuracy": self._knn(features, bank)}
        if self.probe is not None:
            result["probe_accuracy"] = self.probe.accuracy(features, self.evaluation.labels)
        return result

    def _pixels(self) -> list[np.ndarray]:
        """The evaluation images, then the training images they are compared with (if any)."""
        return [self.evaluation.pixels] + ([self.reference.pixels] if self.reference else [])

    def _features(self, encoder: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        from sslcli.eval.features import extract_features

        features = [extract_features(encoder, pixels, self.runtime) for pixels in self._pixels()]
        return features[0], features[1] if len(features) > 1 else None

    def _knn(self, features: torch.Tensor, bank: torch.Tensor | None = None) -> float:
        """Against the training images' features when the evaluation images are others,
        else leave-one-out."""
        from sslcli.eval.knn import knn_accuracy, leave_one_out_knn_accuracy

        labels = self.evaluation.labels
        if bank is None or self.reference is None:
            return leave_one_out_knn_accuracy(features, labels)
        return knn_accuracy(bank, self.reference.labels, features, labels)

    def state(self) -> dict[str, float]:
        return dict(self.floors)

    def load_state(self, state: dict[str, float]) -> None:
        self.floors = dict(state)


def _flat(pixels: np.ndarray) -> torch.Tensor:
    """Raw pixel values (0-255) as one vector per image: the floor of benchmarks/RESULTS.md."""
    return torch.from_numpy(np.array(pixels, dtype=np.float32)).reshape(len(pixels), -1)
