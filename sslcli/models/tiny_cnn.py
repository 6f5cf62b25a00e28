"""Small convolutional encoders: fast enough for tests and for CPU training on small images."""

from __future__ import annotations

import torch
from torch import nn

TINY_BLOCKS = ((1, 1), (2, 2), (2, 1), (4, 2))
"""(width multiplier, stride) of each 3x3 conv block: 4 blocks, 13 px receptive field."""
SMALL_BLOCKS = ((1, 1), (2, 2), (2, 1), (4, 2), (4, 1), (8, 2))
"""Two more blocks and a third stride: a 29 px receptive field, a whole 32 px image's worth."""


def _block(channels_in: int, channels_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """3x3 conv blocks (BatchNorm, ReLU) and global average pooling."""

    def __init__(self, width: int = 32, blocks: tuple[tuple[int, int], ...] = TINY_BLOCKS) -> None:
        super().__init__()
        layers, channels = [], 3
        for multiplier, stride in blocks:
            layers.append(_block(channels, width * multiplier, stride))
            channels = width * multiplier
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


class SpatialSoftArgmax(nn.Module):
    """Where each channel of a feature map fires: a softmax over the positions per channel,
    then the expected x and y in [-1, 1] (Levine, Finn et al. 2016, "End-to-end training of
    deep visuomotor policies", sec. 4.1; Finn et al. 2016, "Deep spatial autoencoders")."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        count, channels, height, width = features.shape
        weights = features.flatten(2).softmax(dim=2).reshape(count, channels, height, width)
        ys = torch.linspace(-1, 1, height, device=features.device, dtype=weights.dtype)
        xs = torch.linspace(-1, 1, width, device=features.device, dtype=weights.dtype)
        expected_y = (weights.sum(dim=3) * ys).sum(dim=2)
        expected_x = (weights.sum(dim=2) * xs).sum(dim=2)
        return torch.cat([expected_x, expected_y], dim=1)


class KeypointCNN(nn.Module):
    """The tiny CNN's blocks, then per channel its average and the place it fires most
    (``SpatialSoftArgmax``): a global average alone says what a frame shows, not where, and
    what moves where is what a video's next frame depends on."""

    def __init__(self, width: int = 32, blocks: tuple[tuple[int, int], ...] = TINY_BLOCKS) -> None:
        super().__init__()
        layers, channels = [], 3
        for multiplier, stride in blocks:
            layers.append(_block(channels, width * multiplier, stride))
            channels = width * multiplier
        self.blocks = nn.Sequential(*layers)
        self.where = SpatialSoftArgmax()
        self.out_dim = 3 * channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.blocks(images)
        return torch.cat([features.mean(dim=(2, 3)), self.where(features)], dim=1)
