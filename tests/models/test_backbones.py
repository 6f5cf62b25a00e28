import pytest
import torch
import torchvision

from sslcli.models.backbones import BACKBONES, BackboneOptions, build_backbone


@pytest.mark.parametrize(
    ("name", "dim", "millions"),
    [
        ("resnet18", 512, 11.2),
        ("resnet50", 2048, 23.5),
        ("tiny-cnn", 128, 0.1),
        ("small-cnn", 256, 0.6),
        ("keypoint-cnn", 384, 0.1),
    ],
)
def test_backbones_give_features_of_their_stated_size(name: str, dim: int, millions: float) -> None:
    backbone = build_backbone(name, BackboneOptions()).eval()
    assert backbone.out_dim == dim
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 64, 64)).shape == (2, dim)
    parameters = sum(p.numel() for p in backbone.parameters()) / 1e6
    assert round(parameters, 1) == millions
    assert f"{millions}M parameters" in BACKBONES.get(name).description


def test_spatial_soft_argmax_gives_where_each_channel_fires() -> None:
    from sslcli.models.tiny_cnn import SpatialSoftArgmax

    maps = torch.zeros(1, 2, 5, 9)
    maps[0, 0, 4, 0] = 100.0  # channel 0 fires at the bottom left, channel 1 at row 1, column 6
    maps[0, 1, 1, 6] = 100.0
    where = SpatialSoftArgmax()(maps)  # [x of each channel, then y of each channel]
    torch.testing.assert_close(where, torch.tensor([[-1.0, 0.5, 1.0, -0.5]]))
    flat = SpatialSoftArgmax()(torch.zeros(1, 1, 4, 4))  # no peak: the centre
    torch.testing.assert_close(flat, torch.zeros(1, 2))


def test_small_image_stem_keeps_resolution_for_32px_inputs() -> None:
    small = build_backbone("resnet18", BackboneOptions(small_images=True))
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    with torch.no_grad():
        assert small.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_resnet_weights_load_into_plain_torchvision() -> None:
    ours = build_backbone("resnet18", BackboneOptions()).state_dict()
    plain = torchvision.models.resnet18(weights=None)
    missing, unexpected = plain.load_state_dict(ours, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []


@pytest.mark.parametrize(("name", "field"), [("tiny-cnn", 13), ("small-cnn", 29)])
def test_cnn_receptive_fields_are_as_stated(name: str, field: int) -> None:
    """The input pixels one central feature-map cell depends on span ``field`` pixels."""
    trunk = build_backbone(name, BackboneOptions()).eval().features[:-2]  # without the pooling
    images = torch.randn(4, 3, 64, 64, requires_grad=True)
    cells = trunk(images)
    middle = cells.shape[-1] // 2
    cells[..., middle, middle].sum().backward()
    reached = images.grad.abs().sum(dim=(0, 1, 2)) > 0
    assert int(reached.sum()) == field


@pytest.mark.parametrize(
    ("name", "dim", "millions"), [("vit-tiny", 192, 5.5), ("vit-small", 384, 21.7)]
)
def test_vits_give_their_class_token_and_their_patch_tokens(
    name: str, dim: int, millions: float
) -> None:
    vit = build_backbone(name, BackboneOptions(image_size=224)).eval()
    assert vit.out_dim == dim and vit.patch_embed.patch_size == (16, 16)
    assert round(sum(p.numel() for p in vit.parameters()) / 1e6, 1) == millions
    assert f"{millions}M parameters" in BACKBONES.get(name).description
    small = build_backbone(name, BackboneOptions(image_size=32, patch_size=4)).eval()
    with torch.no_grad():
        images = torch.randn(2, 3, 32, 32)
        tokens = small.forward_features(images)
        assert tokens.shape == (2, 1 + 8 * 8, dim)  # the class token, then 8 x 8 patches
        assert torch.allclose(small(images), tokens[:, 0], atol=1e-6)
        # DINO's local crops: another size through the same weights
        assert small(torch.randn(2, 3, 16, 16)).shape == (2, dim)


def test_vit_weights_load_into_timm_by_its_own_names() -> None:
    import timm

    ours = build_backbone("vit-tiny", BackboneOptions(image_size=32, patch_size=4, drop_path=0.1))
    plain = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=4
    )
    plain.load_state_dict(ours.state_dict())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain.eval()(images), ours.eval()(images), atol=1e-6)
    assert ours.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)


def test_any_timm_model_by_name_and_clear_errors_for_what_does_not_fit() -> None:
    from sslcli.errors import SSLError
    from sslcli.models.backbones import check_backbone

    model = build_backbone("timm:resnet10t", BackboneOptions())
    assert model.out_dim == 512
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 512)
    with pytest.raises(SSLError, match=r"timm has no model 'resnet10x'.*timm:resnet10t"):
        check_backbone("timm:resnet10x", BackboneOptions())
    with pytest.raises(SSLError, match="--patch-size 5 must divide --size 32"):
        check_backbone("vit-tiny", BackboneOptions(image_size=32, patch_size=5))
    with pytest.raises(SSLError, match="--patch-size applies to the ViTs"):
        check_backbone("resnet18", BackboneOptions(patch_size=4))
