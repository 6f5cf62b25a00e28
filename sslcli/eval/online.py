"""The online linear probe: how linearly separable the classes are, step by step.

The probe (``--online-probe``, as solo-learn reports it) is a linear classifier on the
detached backbone features of each step's first view, trained with the labels of the
training images by its own optimiser. It never changes the encoder; it shows, step by step,
how linearly separable the classes are becoming. Its gradients are averaged over processes,
so 2 processes x batch B train it exactly like 1 process x 2B.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.batchnorm import GlobalBatchNorm
from sslcli.engine.collectives import all_reduce_sum, world_size

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
