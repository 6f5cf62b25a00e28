"""How good an encoder's features are on labelled images: kNN, linear probe, collapse metrics.

The features of a train split and a test split (a separate labelled folder, or a held-out
share of each class, seeded) are compared: the test images are classified by a weighted kNN
vote over the train images and by a linear classifier fitted on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from sslcli.errors import usage_error


@dataclass
class EvalReport:
    knn_accuracy: float
    linear_probe_accuracy: float
    embedding_std: float
    effective_rank: float
    dimensions: int
    train_images: int
    test_images: int
    classes: int
    k: int
    temperature: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def encode_labels(train: list[str], test: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Class names as indices shared by both splits; every test class must be a train class."""
    classes = sorted(set(train))
    unseen = sorted(set(test) - set(classes))
    if unseen:
        raise usage_error(
            f"test classes {', '.join(unseen)} have no train images",
            "the test folder's class sub-folders must also be in the train folder",
        )
    index = {name: i for i, name in enumerate(classes)}
    return (
        torch.tensor([index[c] for c in train]),
        torch.tensor([index[c] for c in test]),
    )


def stratified_split(
    labels: list[str], test_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of a train and a test split holding ``test_fraction`` of each class (at least
    one image of a class with two or more; a class of one image stays in train)."""
    if not 0 < test_fraction < 1:
        raise usage_error(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for name in sorted(set(labels)):
        members = [i for i, label in enumerate(labels) if label == name]
        order = torch.randperm(len(members), generator=generator).tolist()
        held = round(len(members) * test_fraction)
        held = min(max(held, 1), len(members) - 1) if len(members) > 1 else 0
        test += [members[i] for i in order[:held]]
        train += [members[i] for i in order[held:]]
    if not test:
        raise usage_error("no image could be held out for testing", "add images, or --test-dir")
    return sorted(train), sorted(test)


def evaluate_features(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
) -> EvalReport:
    from sslcli.eval.collapse import effective_rank, embedding_std
    from sslcli.eval.knn import knn_accuracy
    from sslcli.eval.linear_probe import linear_probe_accuracy

    everything = torch.cat([train_features, test_features])
    return EvalReport(
        knn_accuracy=knn_accuracy(
            train_features, train_labels, test_features, test_labels, k, temperature
        ),
        linear_probe_accuracy=linear_probe_accuracy(
            train_features, train_labels, test_features, test_labels
        ),
        embedding_std=embedding_std(everything),
        effective_rank=effective_rank(everything),
        dimensions=everything.shape[1],
        train_images=len(train_features),
        test_images=len(test_features),
        classes=len(torch.cat([train_labels, test_labels]).unique()),
        k=min(k, len(train_features)),
        temperature=temperature,
    )
