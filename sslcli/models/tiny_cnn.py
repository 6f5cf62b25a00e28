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
