"""A ViT's tokens with some patches hidden, two ways:

- replaced (``masked_tokens``): iBOT's and DINOv2's student input, where masked patch
  embeddings are replaced by a learnt mask token before the position embeddings
  (``masked_embed`` in iBOT's vision_transformer.py, ``mask_token`` in DINOv2's);
- left out (``visible_tokens``): I-JEPA's context encoder, which runs on the visible patches
  alone, each with its own position embedding (``apply_masks`` in ijepa's
  ``src/models/vision_transformer.py``).
"""

from __future__ import annotations

import torch
from torch import nn


def patch_grid(vit: nn.Module, height: int, width: int) -> tuple[int, int]:
    """The patch rows and columns of an image of ``height`` x ``width`` pixels."""
    rows, columns = vit.patch_embed.patch_size
    return height // rows, width // columns


def masked_tokens(
    vit: nn.Module, images: torch.Tensor, masks: torch.Tensor, mask_token: torch.Tensor
) -> torch.Tensor:
    """timm's ``VisionTransformer.forward_features`` with the patches where ``masks`` (N,
    rows, columns) is True replaced by ``mask_token`` (dim,): (N, 1 + patches, dim)."""
    x = vit.patch_embed(images)  # (N, rows, columns, dim): the ViTs here take any size
    x = torch.where(masks.unsqueeze(-1), mask_token.to(x.dtype), x)
    x = vit._pos_embed(x)
    x = vit.patch_drop(x)
    x = vit.norm_pre(x)
    x = vit.blocks(x)
    return vit.norm(x)


def visible_tokens(vit: nn.Module, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """timm's ``forward_features`` on the patches ``keep`` (N, K) indexes (row-major) alone,
    after their position embeddings: (N, prefix + K, dim), the class token first. Hidden
    patches take no part in attention, so nothing of them reaches the output."""
    x = vit._pos_embed(vit.patch_embed(images))  # (N, prefix + patches, dim)
    prefix = vit.num_prefix_tokens
    patches = torch.gather(x[:, prefix:], 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    x = torch.cat([x[:, :prefix], patches], dim=1)
    x = vit.norm_pre(vit.patch_drop(x))
    return vit.norm(vit.blocks(x))
