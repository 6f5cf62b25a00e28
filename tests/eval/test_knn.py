import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from sslcli.errors import SSLError
from sslcli.eval.knn import knn_accuracy, leave_one_out_knn_accuracy


def _reference_predict(
    queries: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    k: int,
    temperature: float,
    num_classes: int,
    exclude_self: bool = False,
) -> np.ndarray:
    """One query at a time: top-k by cosine similarity, exp(sim / T) weighted class votes."""
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    predictions = []
    for i, query in enumerate(queries):
        query = query / np.linalg.norm(query)
        candidates = np.array([j for j in range(len(reference)) if not exclude_self or j != i])
        similarities = reference[candidates] @ query
        nearest = np.argsort(-similarities)[: min(k, len(candidates))]
        scores = np.zeros(num_classes)
        for j in nearest:
            scores[labels[candidates[j]]] += math.exp(similarities[j] / temperature)
        predictions.append(np.argmax(scores))
    return np.array(predictions)


def _reference_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int,
    temperature: float,
) -> float:
    num_classes = max(train_y.max(), test_y.max()) + 1
    predicted = _reference_predict(test_x, train_x, train_y, k, temperature, num_classes)
    return float(np.mean(predicted == test_y))


def _reference_loo_accuracy(x: np.ndarray, y: np.ndarray, k: int, temperature: float) -> float:
    predicted = _reference_predict(x, x, y, k, temperature, y.max() + 1, exclude_self=True)
    return float(np.mean(predicted == y))


def _random_split(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy class centres, so that accuracy is neither 0 nor 1."""
    centres = rng.normal(size=(classes, 8))
    labels = rng.integers(0, classes, size=n)
    return centres[labels] + 1.5 * rng.normal(size=(n, 8)), labels


@pytest.mark.parametrize("k", [5, 200])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_knn_accuracy_matches_a_direct_computation(k: int, temperature: float) -> None:
    rng = np.random.default_rng(0)
    train_x, train_y = _random_split(rng, 60, 4)
    test_x, test_y = _random_split(rng, 45, 4)
    expected = _reference_accuracy(train_x, train_y, test_x, test_y, k, temperature)
    assert 0.0 < expected < 1.0
    accuracy = knn_accuracy(
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
        k=k,
        temperature=temperature,
        chunk=16,
    )
    assert accuracy == pytest.approx(expected)


@pytest.mark.parametrize("k", [5, 200])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_leave_one_out_matches_a_direct_computation(k: int, temperature: float) -> None:
    rng = np.random.default_rng(1)
    x, y = _random_split(rng, 70, 5)
    expected = _reference_loo_accuracy(x, y, k, temperature)
    assert 0.0 < expected < 1.0
    accuracy = leave_one_out_knn_accuracy(
        torch.from_numpy(x), torch.from_numpy(y), k=k, temperature=temperature, chunk=16
    )
    assert accuracy == pytest.approx(expected)


def test_chunking_does_not_change_the_result() -> None:
    rng = np.random.default_rng(2)
    x, y = (torch.from_numpy(a) for a in _random_split(rng, 50, 3))
    whole = knn_accuracy(x[:30], y[:30], x[30:], y[30:], k=7, chunk=1024)
    assert knn_accuracy(x[:30], y[:30], x[30:], y[30:], k=7, chunk=3) == whole
    whole = leave_one_out_knn_accuracy(x, y, k=7, chunk=1024)
    assert leave_one_out_knn_accuracy(x, y, k=7, chunk=3) == whole


def test_separable_classes_are_classified_perfectly() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(20)
    features = 10 * torch.eye(3)[labels] + 0.1 * torch.randn(60, 3, generator=generator)
    assert knn_accuracy(features[::2], labels[::2], features[1::2], labels[1::2]) == 1.0
    assert leave_one_out_knn_accuracy(features, labels) == 1.0


def test_temperature_decides_between_one_close_and_two_far_neighbours() -> None:
    # Class 0 has one neighbour at similarity 1, class 1 two at similarity 0.5: a sharp
    # temperature lets the close one win (e^10 > 2 e^5), a flat one the majority
    # (e^0.1 < 2 e^0.05).
    half = math.sqrt(3) / 2
    train = torch.tensor([[1.0, 0.0], [0.5, half], [0.5, -half]])
    train_labels = torch.tensor([0, 1, 1])
    test, test_labels = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    assert knn_accuracy(train, train_labels, test, test_labels, k=3, temperature=0.1) == 1.0
    assert knn_accuracy(train, train_labels, test, test_labels, k=3, temperature=10.0) == 0.0


def test_labels_absent_from_train_count_as_classes() -> None:
    train, train_labels = torch.eye(2), torch.tensor([0, 1])
    test, test_labels = torch.eye(2), torch.tensor([0, 2])
    assert knn_accuracy(train, train_labels, test, test_labels, k=1) == 0.5


@pytest.mark.parametrize(
    ("features", "labels"),
    [
        (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
        (torch.zeros(3, 4), torch.zeros(2, dtype=torch.long)),
        (torch.zeros(3), torch.zeros(3, dtype=torch.long)),
        (torch.zeros(3, 4), torch.zeros(3)),
        (torch.zeros(3, 4), torch.tensor([0, -1, 1])),
    ],
)
def test_bad_inputs_are_usage_errors(features: torch.Tensor, labels: torch.Tensor) -> None:
    good_x, good_y = torch.randn(4, 4), torch.tensor([0, 1, 0, 1])
    for call in (
        lambda: knn_accuracy(features, labels, good_x, good_y),
        lambda: knn_accuracy(good_x, good_y, features, labels),
        lambda: leave_one_out_knn_accuracy(features, labels),
    ):
        with pytest.raises(SSLError) as error:
            call()
        assert error.value.exit_code == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda x, y: knn_accuracy(x, y, torch.randn(2, 3), torch.tensor([0, 1])),
        lambda x, y: leave_one_out_knn_accuracy(x[:1], y[:1]),
        lambda x, y: knn_accuracy(x, y, x, y, k=0),
        lambda x, y: knn_accuracy(x, y, x, y, temperature=0.0),
        lambda x, y: leave_one_out_knn_accuracy(x, y, chunk=0),
    ],
    ids=["dimensions", "one-sample", "k", "temperature", "chunk"],
)
def test_bad_options_are_usage_errors(call: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    with pytest.raises(SSLError) as error:
        call(torch.randn(4, 4), torch.tensor([0, 1, 0, 1]))
    assert error.value.exit_code == 2
