"""Linear probe: a softmax classifier on frozen features, the usual second SSL evaluation.

Features are standardised with the train split's mean and std; the classifier starts at zero
and is fitted full-batch with L-BFGS on cross-entropy plus an L2 penalty, so the result is
deterministic and needs no learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslcli.errors import usage_error


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    l2: float = 1e-4,
    max_iter: int = 200,
) -> float:
    """Share of test samples the fitted classifier gets right."""
    if len(train_features) == 0 or len(test_features) == 0:
        raise usage_error("the linear probe needs train and test samples")
    mean = train_features.float().mean(dim=0)
    std = train_features.float().std(dim=0, unbiased=False).clamp_min(1e-6)
    train = (train_features.float() - mean) / std
    test = (test_features.float() - mean) / std
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    weight = torch.zeros(train.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-6
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train @ weight + bias, train_labels)
        loss = loss + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    with torch.no_grad():
        predicted = (test @ weight + bias).argmax(dim=1)
    return float((predicted == test_labels).float().mean())
