"""A backbone name as --model: random weights, drawn from the seed and nothing else."""

import torch

from sslcli.runs.loading import load_model


def test_random_weights_depend_only_on_the_seed() -> None:
    torch.manual_seed(3)
    first = load_model("tiny-cnn", size=16)
    torch.rand(10)  # other draws in between change nothing
    second = load_model("tiny-cnn", size=16)
    torch.manual_seed(4)
    other = load_model("tiny-cnn", size=16)
    weights = first.backbone.state_dict()
    for name, tensor in second.backbone.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    assert any(
        not torch.equal(tensor, weights[name])
        for name, tensor in other.backbone.state_dict().items()
    )
    assert "seed 3" in first.description and "seed 4" in other.description
