"""Hiding parts of an image at the patch level: masks over a ViT's patch grid.

- iBOT's masked patches (``global_batch_masks``) follow DINOv2's collate
  (``dinov2/data/collate.py``) and masking generator (``dinov2/data/masking.py``, after
  BEiT's): half of the global crops are masked, with masked shares spread evenly over
  [0.1, 0.5]; each mask is built of rectangles of at least 4 patches and aspect 0.3-3.3
  until it holds its share.
- I-JEPA's multi-block masks (``multiblock_masks``) follow its ``MaskCollator``
  (``ijepa/src/masks/multiblock.py``; Assran et al. 2023, Sec. 3): 4 target blocks of 15-20%
  of the image each, aspect 0.75-1.5, one size for the whole batch; a square context block
  of 85-100% with every target patch removed (at least 4 patches kept); the contexts cut to
  the batch's shortest so they stack.
- MAE's random masks (``random_masks``) follow ``random_masking`` in the authors'
  ``models_mae.py`` (He et al. 2022, Sec. 3): each image's patches shuffled by its own
  uniform noise, the first ``1 - ratio`` of them kept (75% hidden by default).

Every draw comes from one generator, so a global batch's masks depend on the seed alone,
whatever the number of processes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

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


TARGET_BLOCKS = 4
TARGET_SCALE = (0.15, 0.2)
TARGET_ASPECT = (0.75, 1.5)
CONTEXT_SCALE = (0.85, 1.0)
MIN_CONTEXT = 4
"""The fewest patches a context keeps (I-JEPA's ``min_keep``)."""


@dataclass(frozen=True)
class MultiBlockMasks:
    """Patch indices (row-major on the patch grid) per sample."""

    context: torch.Tensor
    """(N, K) long, ascending: the patches the context encoder sees; none is a target's."""
    targets: torch.Tensor
    """(N, blocks, h * w) long: each target block's patches, row by row."""


def _block_size(
    rows: int, columns: int, scale: tuple[float, float], aspect: tuple[float, float],
    generator: torch.Generator,
) -> tuple[int, int]:  # fmt: skip
    """``_sample_block_size``: a share of the grid drawn from ``scale``, shaped by an aspect
    (height / width) drawn from ``aspect``, kept inside the grid."""
    share = _uniform(generator, *scale)
    ratio = _uniform(generator, *aspect)
    patches = share * rows * columns
    height = max(1, min(rows - 1, round(math.sqrt(patches * ratio))))
    width = max(1, min(columns - 1, round(math.sqrt(patches / ratio))))
    return height, width


def _block(
    rows: int, columns: int, size: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """A (rows, columns) bool mask of one block of ``size`` at a random place."""
    height, width = size
    top, left = _integer(generator, 0, rows - height), _integer(generator, 0, columns - width)
    mask = torch.zeros(rows, columns, dtype=torch.bool)
    mask[top : top + height, left : left + width] = True
    return mask


def multiblock_masks(
    count: int, rows: int, columns: int, generator: torch.Generator, blocks: int = TARGET_BLOCKS
) -> MultiBlockMasks:
    """I-JEPA's masks for ``count`` images of a (rows, columns) patch grid. A context that
    would keep fewer than ``MIN_CONTEXT`` patches is drawn again (10 times at most, then all
    the patches outside the targets are kept); contexts longer than the batch's shortest
    keep a random subset of that length (I-JEPA keeps the first ones, which favours the top
    of the image)."""
    target_size = _block_size(rows, columns, TARGET_SCALE, TARGET_ASPECT, generator)
    context_size = _block_size(rows, columns, CONTEXT_SCALE, (1.0, 1.0), generator)
    targets, contexts = [], []
    for _ in range(count):
        drawn = [_block(rows, columns, target_size, generator) for _ in range(blocks)]
        hidden = torch.stack(drawn).any(dim=0)
        context = torch.zeros_like(hidden)
        for _ in range(ATTEMPTS):
            context = _block(rows, columns, context_size, generator) & ~hidden
            if int(context.sum()) >= MIN_CONTEXT:
                break
        else:
            context = ~hidden
        targets.append(torch.stack([block.flatten().nonzero().squeeze(1) for block in drawn]))
        contexts.append(context.flatten().nonzero().squeeze(1))
    shortest = min(len(context) for context in contexts)
    kept = [
        context[torch.randperm(len(context), generator=generator)[:shortest].sort().values]
        for context in contexts
    ]
    return MultiBlockMasks(torch.stack(kept), torch.stack(targets))


MAE_MASK_RATIO = 0.75
"""The share of patches MAE hides (He et al. 2022, Sec. 3 and Fig. 5)."""


def random_masks(
    count: int, patches: int, generator: torch.Generator, ratio: float = MAE_MASK_RATIO
) -> MultiBlockMasks:
    """MAE's masks for ``count`` images of ``patches`` patches: ``int(patches * (1 - ratio))``
    of them seen (at least 1), the others one target block, both ascending."""
    kept = max(1, int(patches * (1 - ratio)))
    order = torch.rand(count, patches, generator=generator).argsort(dim=1)
    context = order[:, :kept].sort(dim=1).values
    hidden = order[:, kept:].sort(dim=1).values
    return MultiBlockMasks(context, hidden.unsqueeze(1))
