import pytest
import torch
import torchvision

from sslcli.models.backbones import BACKBONES


@pytest.mark.parametrize(
    ("name", "dim", "millions"),
    [
        ("resnet18", 512, 11.2),
        ("resnet50", 2048, 23.5),
        ("tiny-cnn", 128, 0.1),
        ("small-cnn", 256, 0.6),
    ],
)
def test_backbones_give_features_of_their_stated_size(name: str, dim: int, millions: float) -> None:
    backbone = BACKBONES.create(name).eval()
    assert backbone.out_dim == dim
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 64, 64)).shape == (2, dim)
    parameters = sum(p.numel() for p in backbone.parameters()) / 1e6
    assert round(parameters, 1) == millions
    assert f"{millions}M parameters" in BACKBONES.get(name).description


def test_small_image_stem_keeps_resolution_for_32px_inputs() -> None:
    small = BACKBONES.create("resnet18", small_images=True)
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    with torch.no_grad():
        assert small.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_resnet_weights_load_into_plain_torchvision() -> None:
    ours = BACKBONES.create("resnet18").state_dict()
    plain = torchvision.models.resnet18(weights=None)
    missing, unexpected = plain.load_state_dict(ours, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []


@pytest.mark.parametrize(("name", "field"), [("tiny-cnn", 13), ("small-cnn", 29)])
def test_cnn_receptive_fields_are_as_stated(name: str, field: int) -> None:
    """The input pixels one central feature-map cell depends on span ``field`` pixels."""
    trunk = BACKBONES.create(name).eval().features[:-2]  # without the pooling
    images = torch.randn(4, 3, 64, 64, requires_grad=True)
    cells = trunk(images)
    middle = cells.shape[-1] // 2
    cells[..., middle, middle].sum().backward()
    reached = images.grad.abs().sum(dim=(0, 1, 2)) > 0
    assert int(reached.sum()) == field
