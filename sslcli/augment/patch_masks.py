"""Hiding parts of an image at the patch level: blockwise masks over a ViT's patch grid, for
iBOT's masked-patch objective.

The masks follow DINOv2's collate (``dinov2/data/collate.py``) and masking generator
(``dinov2/data/masking.py``, after BEiT's): half of the global crops are masked, with masked
shares spread evenly over [0.1, 0.5]; each mask is built of rectangles of at least 4 patches
and aspect 0.3-3.3 until it holds its share. Every draw comes from one generator, so a global
batch's masks depend on the seed alone, whatever the number of processes.
"""

from __future__ import annotations

import itertools
import math

import torch

MIN_BLOCK = 4
ASPECT = (0.3, 1 / 0.3)
ATTEMPTS = 10
MASKED_SHARE = 0.5
"""The share of global crops that are masked at all (DINOv2's ``mask_probability``)."""


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _integer(generator: torch.Generator, low: int, high: int) -> int:
    """A draw from low..high, both included."""
    return int(torch.randint(low, high + 1, (), generator=generator).item())


def block_mask(height: int, width: int, patches: int, generator: torch.Generator) -> torch.Tensor:
    """A (height, width) bool mask of about ``patches`` patches, as rectangles
    (``MaskingGenerator.__call__`` and ``_mask``)."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    most = 0.5 * height * width
    count = 0
    log_low, log_high = (math.log(a) for a in ASPECT)
    while count < patches:
        room = min(patches - count, most)
        added = 0
        for _ in range(ATTEMPTS):
            if room < MIN_BLOCK:
                break
            area = _uniform(generator, MIN_BLOCK, room)
            aspect = math.exp(_uniform(generator, log_low, log_high))
            h = round(math.sqrt(area * aspect))
            w = round(math.sqrt(area / aspect))
            if 0 < w < width and 0 < h < height:
                top = _integer(generator, 0, height - h)
                left = _integer(generator, 0, width - w)
                block = mask[top : top + h, left : left + w]
                new = h * w - int(block.sum())
                if 0 < new <= room:
                    block.fill_(True)
                    added = new
            if added:
                break
        if not added:
            break
        count += added
    return mask


def global_batch_masks(
    crops: int, height: int, width: int, ratios: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    """(crops, height, width) masks for every global crop of the global batch: the first
    half masked, the k-th with a share drawn from the k-th of equal parts of ``ratios``, the
    others empty, then shuffled (DINOv2's ``collate_data_and_cast``)."""
    masked = int(crops * MASKED_SHARE)
    low, high = ratios
    edges = torch.linspace(low, high, masked + 1).tolist()
    masks = [
        block_mask(height, width, int(height * width * _uniform(generator, a, b)), generator)
        for a, b in itertools.pairwise(edges)
    ]
    masks += [torch.zeros(height, width, dtype=torch.bool)] * (crops - masked)
    order = torch.randperm(crops, generator=generator)
    return torch.stack(masks)[order]
