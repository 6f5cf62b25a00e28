import torch

from sslcli.eval.linear_probe import linear_probe_accuracy


def _blobs(seed: int, count: int, spread: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    labels = torch.arange(count) % 3
    return centres[labels] + spread * torch.randn(count, 3, generator=generator), labels


def test_the_probe_separates_linearly_separable_classes() -> None:
    train, train_labels = _blobs(0, 90, 0.5)
    test, test_labels = _blobs(1, 60, 0.5)
    assert linear_probe_accuracy(train, train_labels, test, test_labels) == 1.0


def test_the_probe_is_at_chance_on_features_unrelated_to_the_labels() -> None:
    generator = torch.Generator().manual_seed(2)
    train, test = (
        torch.randn(300, 8, generator=generator),
        torch.randn(3000, 8, generator=generator),
    )
    train_labels = torch.randint(0, 2, (300,), generator=generator)
    test_labels = torch.randint(0, 2, (3000,), generator=generator)
    assert 0.45 < linear_probe_accuracy(train, train_labels, test, test_labels) < 0.55


def test_the_probe_is_deterministic_and_ignores_feature_scale() -> None:
    train, train_labels = _blobs(3, 60, 2.0)
    test, test_labels = _blobs(4, 60, 2.0)
    first = linear_probe_accuracy(train, train_labels, test, test_labels)
    assert first == linear_probe_accuracy(train, train_labels, test, test_labels)
    scale = torch.tensor([1000.0, 1.0, 0.001])
    assert first == linear_probe_accuracy(train * scale, train_labels, test * scale, test_labels)
