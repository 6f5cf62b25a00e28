"""Features of decoded images, batched, without gradients."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from sslcli.engine.runtime import Runtime


def pixels_to_batch(
    pixels: np.ndarray,
    device: torch.device,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 images (N, H, W, 3) as the normalised float batch (N, 3, H, W) a model takes.

    The batch is channels-last in memory (a permuted view of the pixels' layout), which
    convolutions prefer; scaling to [0, 1] and normalising are one multiply-add.
    """
    # np.array: a writable copy of memory-mapped rows
    batch = torch.from_numpy(np.array(pixels)).to(device, non_blocking=True)
    scale = torch.tensor([1 / (255 * s) for s in std], device=device).reshape(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)], device=device)
    return torch.addcmul(shift.reshape(1, 3, 1, 1), batch.permute(0, 3, 1, 2).float(), scale)


@torch.inference_mode()
def extract_features(
    encoder: nn.Module,
    pixels: np.ndarray,
    runtime: Runtime,
    batch_size: int = 256,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    on_progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Features (N, D), float32 on the CPU, of uint8 images (N, H, W, 3), each only resized.

    The encoder runs in eval mode (restored after), under the runtime's autocast, with
    channels-last inputs (faster convolutions on CPUs and GPUs; same values).
    ``on_progress(n)`` follows each batch of ``n`` images.
    """
    was_training = encoder.training
    encoder.eval()
    parts = []
    for start in range(0, len(pixels), batch_size):
        images = pixels_to_batch(pixels[start : start + batch_size], runtime.device, mean, std)
        with runtime.autocast():
            parts.append(encoder(images).float())
        if on_progress is not None:
            on_progress(len(images))
    encoder.train(was_training)
    return torch.cat(parts).cpu()
