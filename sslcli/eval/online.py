"""Evaluation while a run trains: kNN accuracy every few epochs and an online linear probe.

The probe (``--online-probe``, as solo-learn reports it) is a linear classifier on the
detached backbone features of each step's first view, trained with the labels of the
training images by its own optimiser. It never changes the encoder; it shows, step by step,
how linearly separable the classes are becoming. Its gradients are averaged over processes,
so 2 processes x batch B train it exactly like 1 process x 2B.

Every few epochs the encoder's features of the evaluation images (``--eval-dir``, or the
un-augmented training images) give the kNN accuracy (k=200, T=0.1, cosine; against the
training images when those are labelled, else leave-one-out) and the probe's accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.batchnorm import GlobalBatchNorm
from sslcli.engine.collectives import all_reduce_sum, world_size

if TYPE_CHECKING:
    import numpy as np

    from sslcli.engine.runtime import Runtime
    from sslcli.methods.base import SSLMethod

PROBE_LR = 1e-2


class OnlineProbe(nn.Module):
    """Standardisation (global-batch statistics, no affine) then a zero-initialised linear
    layer: the same start on every process, and no sensitivity to the features' scale."""

    def __init__(
        self, dim: int, classes: int, labels_at: Callable[[int], torch.Tensor], device: torch.device
    ) -> None:
        super().__init__()
        self.standardise = GlobalBatchNorm(dim, affine=False)
        self.linear = nn.Linear(dim, classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.to(device)
        self.labels_at = labels_at
        self.optimizer = torch.optim.Adam(self.parameters(), lr=PROBE_LR)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardise(features.float()))

    def train_step(self, step: int, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update on this rank's features of ``step``; its loss and accuracy (detached)."""
        labels = self.labels_at(step).to(features.device)
        self.train()
        with torch.autocast(features.device.type, enabled=False):
            logits = self(features.detach())
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world_size() > 1:
            for parameter in self.parameters():
                parameter.grad = all_reduce_sum(parameter.grad) / world_size()
        self.optimizer.step()
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"probe_loss": loss.detach(), "probe_train_accuracy": accuracy}

    @torch.no_grad()
    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        was_training = self.training
        self.eval()
        device = self.linear.weight.device
        predicted = self(features.to(device)).argmax(1).cpu()
        self.train(was_training)
        return (predicted == labels).float().mean().item()

    def state(self) -> dict[str, Any]:
        return {"weights": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])


@dataclass(frozen=True)
class LabelledImages:
    pixels: np.ndarray
    """uint8 (N, H, W, 3), at the training resolution."""
    labels: torch.Tensor


class EpochEvaluation:
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

    def __call__(self, method: SSLMethod, epoch: int) -> dict[str, float]:
        from sslcli.eval.features import extract_features
        from sslcli.eval.knn import knn_accuracy, leave_one_out_knn_accuracy

        if not self.runtime.is_main or (epoch % self.every and epoch != self.epochs):
            return {}
        features = extract_features(method.backbone, self.evaluation.pixels, self.runtime)
        labels = self.evaluation.labels
        if self.reference is None:
            result = {"knn_accuracy": leave_one_out_knn_accuracy(features, labels)}
        else:
            bank = extract_features(method.backbone, self.reference.pixels, self.runtime)
            result = {"knn_accuracy": knn_accuracy(bank, self.reference.labels, features, labels)}
        if self.probe is not None:
            result["probe_accuracy"] = self.probe.accuracy(features, labels)
        return result
