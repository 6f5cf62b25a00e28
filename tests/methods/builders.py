"""Each method at a size the CPU tests afford: a tiny CNN (a ViT for iBOT, which masks
patches), small heads, and a teacher for distillation."""

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
    heads = {"hidden_dim": 64, "projection_dim": 32} | options
    if name in ("dino", "ibot"):
        heads["prototypes"] = 64
    if name == "ibot":
        return cls(
            build_backbone("vit-tiny", BackboneOptions(image_size=16, patch_size=4)), **heads
        )
    return cls(TinyCNN(), **heads)
