"""A small convolutional encoder: fast enough for tests and for CPU training on small images."""

from __future__ import annotations

import torch
from torch import nn


def _block(channels_in: int, channels_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """Four 3x3 conv blocks (two of them strided) and global average pooling."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width, 1),
            _block(width, width * 2, 2),
            _block(width * 2, width * 2, 1),
            _block(width * 2, width * 4, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = width * 4

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)
