"""Backbone features of decoded images, batched, without gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sslcli.augment.ops import normalize
from sslcli.engine.runtime import Runtime


@torch.inference_mode()
def extract_features(
    backbone: nn.Module, pixels: np.ndarray, runtime: Runtime, batch_size: int = 256
) -> torch.Tensor:
    """Features (N, D) on the CPU of uint8 images (N, H, W, 3), each only resized (no views)."""
    was_training = backbone.training
    backbone.eval()
    parts = []
    for start in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(np.array(pixels[start : start + batch_size]))
        images = batch.to(runtime.device).permute(0, 3, 1, 2).float().div_(255)
        with runtime.autocast():
            parts.append(backbone(normalize(images)).float().cpu())
    backbone.train(was_training)
    return torch.cat(parts)
