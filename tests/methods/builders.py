"""Each method at a size the CPU tests afford: a tiny CNN (a ViT for iBOT, masked latent
prediction and MAE, which mask patches), small heads, and a teacher for distillation."""

from __future__ import annotations

from typing import Any

from sslcli.methods import METHODS
from sslcli.methods.base import SSLMethod
from sslcli.models.backbones import BackboneOptions, build_backbone
from sslcli.models.tiny_cnn import TinyCNN


def small_method(name: str, **options: Any) -> SSLMethod:
    """``name`` with 64-32 heads (64 prototypes for DINO and iBOT) on 16 px inputs."""
    cls = METHODS.create(name)
    if name == "distill":
        method = cls(TinyCNN(), teacher_dim=128, **options)
        method.teach_with(TinyCNN())
        return method
    if cls.needs_patches:
        vit = build_backbone("vit-tiny", BackboneOptions(image_size=16, patch_size=4))
        if name == "masked-latent":  # no heads: a predictor of its own
            return cls(vit, latent_dim=4, **options)
        if name == "mae":  # a decoder of its own
            return cls(vit, **options)
        return cls(vit, **({"hidden_dim": 64, "projection_dim": 32, "prototypes": 64} | options))
    heads = {"hidden_dim": 64, "projection_dim": 32} | options
    if name == "dino":
        heads["prototypes"] = 64
    return cls(TinyCNN(), **heads)
