"""A ViT's tokens with some patches hidden: iBOT's and DINOv2's student input, where masked
patch embeddings are replaced by a learnt mask token before the position embeddings
(``masked_embed`` in iBOT's vision_transformer.py, ``mask_token`` in DINOv2's)."""

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
