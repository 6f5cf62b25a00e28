import pytest
import torch

from sslcli.errors import SSLError
from sslcli.eval.report import encode_labels, evaluate_features, stratified_split


def test_the_split_holds_out_a_share_of_every_class_reproducibly() -> None:
    labels = ["a"] * 10 + ["b"] * 5 + ["c"] * 1
    train, test = stratified_split(labels, 0.2, seed=0)
    assert sorted(train + test) == list(range(16))
    assert [labels[i] for i in test].count("a") == 2 and [labels[i] for i in test].count("b") == 1
    assert 15 in train  # a class of one image stays in train
    assert (train, test) == stratified_split(labels, 0.2, seed=0)
    assert test != stratified_split(labels, 0.2, seed=1)[1]
    with pytest.raises(SSLError, match="between 0 and 1"):
        stratified_split(labels, 1.0, seed=0)


def test_labels_share_indices_and_unknown_test_classes_are_refused() -> None:
    train, test = encode_labels(["cat", "dog", "cat"], ["dog", "cat"])
    assert train.tolist() == [0, 1, 0] and test.tolist() == [1, 0]
    with pytest.raises(SSLError, match="test classes emu have no train images"):
        encode_labels(["cat", "dog"], ["emu"])


def test_the_report_gathers_knn_probe_and_collapse_metrics() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    features = torch.randn(40, 4, generator=generator) + 5 * labels[:, None]
    report = evaluate_features(features[:30], labels[:30], features[30:], labels[30:], k=5)
    assert report.knn_accuracy == 1.0 and report.linear_probe_accuracy == 1.0
    assert report.train_images == 30 and report.test_images == 10 and report.classes == 2
    assert report.dimensions == 4 and 1 < report.effective_rank <= 4 and report.k == 5
