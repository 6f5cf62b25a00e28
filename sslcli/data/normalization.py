"""The channel statistics images are standardised with before a model sees them.

ImageNet's mean and std are what every torchvision backbone expects; a run records the
statistics it trained with (``mean``/``std`` in its config), and inference uses the run's.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(
    images: torch.Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    in_place: bool = False,
) -> torch.Tensor:
    """Standardise channels (the statistics every torchvision backbone expects); ``in_place``
    overwrites ``images`` (half the memory traffic of a new tensor)."""
    shift = torch.tensor(mean, dtype=images.dtype, device=images.device).reshape(1, 3, 1, 1)
    scale = torch.tensor(std, dtype=images.dtype, device=images.device).reshape(1, 3, 1, 1)
    if in_place:
        return images.sub_(shift).div_(scale)
    return (images - shift) / scale
