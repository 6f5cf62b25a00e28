"""The backbone registry: encoders that map images (N, 3, H, W) to features (N, out_dim).

Every backbone has an ``out_dim`` attribute. ResNets keep torchvision's parameter names (the
classifier ``fc`` is an identity), so their weights load into a plain torchvision model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sslcli.registry import Registry

if TYPE_CHECKING:
    from torch import nn

BACKBONES: Registry[nn.Module] = Registry("backbone")


def _resnet(name: str, small_images: bool) -> nn.Module:
    """A torchvision ResNet without its classifier.

    ``small_images`` (for inputs of about 32-64 px) replaces the 7x7 stride-2 stem and the
    max-pool with one 3x3 stride-1 convolution, as in the SimCLR paper's CIFAR variant.
    """
    import torchvision
    from torch import nn

    model = getattr(torchvision.models, name)(weights=None)
    if small_images:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.out_dim = model.fc.in_features
    model.fc = nn.Identity()
    return model


@BACKBONES.register("resnet18", "torchvision ResNet-18, 512-d features (11.2M parameters)")
def resnet18(small_images: bool = False) -> nn.Module:
    return _resnet("resnet18", small_images)


@BACKBONES.register("resnet50", "torchvision ResNet-50, 2048-d features (23.5M parameters)")
def resnet50(small_images: bool = False) -> nn.Module:
    return _resnet("resnet50", small_images)


@BACKBONES.register("tiny-cnn", "4-layer CNN, 128-d features (0.1M parameters); tests, CPU")
def tiny_cnn(small_images: bool = False) -> nn.Module:
    """``small_images`` is accepted for a uniform signature; the tiny CNN suits any size."""
    from sslcli.models.tiny_cnn import TinyCNN

    return TinyCNN()


@BACKBONES.register(
    "small-cnn", "6-layer CNN, 256-d features (0.6M parameters); CPU, sees a whole 32 px image"
)
def small_cnn(small_images: bool = False) -> nn.Module:
    """The tiny CNN with two more blocks: its features see all of a 32 px image."""
    from sslcli.models.tiny_cnn import SMALL_BLOCKS, TinyCNN

    return TinyCNN(blocks=SMALL_BLOCKS)
