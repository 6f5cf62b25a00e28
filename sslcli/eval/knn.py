"""Weighted kNN classification of frozen features, as in lightly's and solo-learn's benchmarks.

InstDisc style: features are L2-normalised, each query takes its ``k`` most cosine-similar
reference samples, each neighbour votes for its class with weight ``exp(sim / temperature)``,
and the class with the largest total wins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslcli.errors import usage_error


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> float:
    """Fraction of test samples whose weighted kNN vote over the train samples is right.

    ``k`` is capped at the number of train samples. Test rows are processed ``chunk`` at a time
    so that memory stays at ``chunk x len(train)`` similarities. Runs on the train features'
    device.
    """
    _check_options(k, temperature, chunk)
    _check_split(train_features, train_labels, "train")
    _check_split(test_features, test_labels, "test")
    if train_features.shape[1] != test_features.shape[1]:
        raise usage_error(
            f"train features have {train_features.shape[1]} dimensions but test features have "
            f"{test_features.shape[1]}",
            "embed both splits with the same model",
        )
    device = train_features.device
    return _accuracy(
        _normalise(test_features.to(device)),
        test_labels.to(device),
        _normalise(train_features),
        train_labels.to(device),
        min(k, len(train_features)),
        temperature,
        chunk,
        exclude_self=False,
    )


def leave_one_out_knn_accuracy(
    features: torch.Tensor,
    labels: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> float:
    """kNN accuracy of each sample against all the others, for when there is no test split.

    A sample is never its own neighbour; ``k`` is capped at ``len(features) - 1``.
    """
    _check_options(k, temperature, chunk)
    _check_split(features, labels, "evaluation")
    if len(features) < 2:
        raise usage_error(
            "leave-one-out kNN needs at least 2 samples", "evaluate on a larger data set"
        )
    features = _normalise(features)
    labels = labels.to(features.device)
    k = min(k, len(features) - 1)
    return _accuracy(features, labels, features, labels, k, temperature, chunk, exclude_self=True)


def _accuracy(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    references: torch.Tensor,
    reference_labels: torch.Tensor,
    k: int,
    temperature: float,
    chunk: int,
    exclude_self: bool,
) -> float:
    """Share of queries whose vote is right; with ``exclude_self`` query i is reference i."""
    num_classes = int(max(reference_labels.max(), query_labels.max())) + 1
    correct = torch.zeros((), dtype=torch.long, device=queries.device)
    for start in range(0, len(queries), chunk):
        similarities = queries[start : start + chunk] @ references.T
        if exclude_self:
            rows = torch.arange(len(similarities), device=queries.device)
            # Cosine similarities are >= -1, so -inf is never among the top k <= n - 1.
            similarities[rows, rows + start] = -torch.inf
        predicted = _vote(similarities, reference_labels, k, temperature, num_classes)
        correct += (predicted == query_labels[start : start + chunk]).sum()
    return correct.item() / len(queries)


def _vote(
    similarities: torch.Tensor,
    reference_labels: torch.Tensor,
    k: int,
    temperature: float,
    num_classes: int,
) -> torch.Tensor:
    """Predicted class of each row of a (queries, references) similarity matrix."""
    top, index = similarities.topk(k, dim=1)
    # Shifting by the row maximum scales a row's weights by one factor: same argmax, no overflow
    # for small temperatures.
    weights = ((top - top[:, :1]) / temperature).exp()
    scores = torch.zeros(len(top), num_classes, dtype=weights.dtype, device=weights.device)
    scores.scatter_add_(1, reference_labels[index], weights)
    return scores.argmax(dim=1)


def _normalise(features: torch.Tensor) -> torch.Tensor:
    """L2-normalised rows, in at least single precision."""
    return F.normalize(features.to(torch.promote_types(features.dtype, torch.float32)), dim=1)


def _check_options(k: int, temperature: float, chunk: int) -> None:
    if k < 1:
        raise usage_error(f"kNN needs k >= 1, got {k}", "pass a positive number of neighbours")
    if temperature <= 0:
        raise usage_error(
            f"kNN temperature must be positive, got {temperature}", "0.1 is the usual value"
        )
    if chunk < 1:
        raise usage_error(f"kNN chunk must be >= 1, got {chunk}", "1024 rows is a good default")


def _check_split(features: torch.Tensor, labels: torch.Tensor, split: str) -> None:
    if features.ndim != 2 or labels.ndim != 1:
        raise usage_error(
            f"{split} features must be (samples, dimensions) and labels (samples,), got "
            f"{tuple(features.shape)} and {tuple(labels.shape)}",
            "flatten the embeddings and pass one class index per sample",
        )
    if len(features) == 0:
        raise usage_error(f"no {split} samples to evaluate", "check the data set is not empty")
    if len(features) != len(labels):
        raise usage_error(
            f"{len(features)} {split} features but {len(labels)} labels",
            "pass one label per sample",
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or int(labels.min()) < 0:
        raise usage_error(
            f"{split} labels must be non-negative class indices", "use integer labels 0..C-1"
        )
