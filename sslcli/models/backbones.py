"""The backbone registry: encoders that map images (N, 3, H, W) to features (N, out_dim).

Every backbone has an ``out_dim`` attribute. ResNets keep torchvision's parameter names (the
classifier ``fc`` is an identity), so their weights load into a plain torchvision model; timm
models (the ViTs, and any ``timm:NAME``) keep timm's, so theirs load into
``timm.create_model(NAME, num_classes=0)``. A ViT also gives its tokens: ``forward_features``
maps images to (N, 1 + patches, dim), the class token first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sslcli.errors import usage_error
from sslcli.registry import Registry

if TYPE_CHECKING:
    from torch import nn

BACKBONES: Registry[nn.Module] = Registry("backbone")
TIMM_PREFIX = "timm:"
VIT_MODELS = {
    "vit-tiny": "vit_tiny_patch16_224",
    "vit-small": "vit_small_patch16_224",
    "vit-base": "vit_base_patch16_224",
}
"""timm's model behind each of our ViT names."""
TORCHVISION_MODELS = ("resnet18", "resnet50")
"""The backbones that are torchvision's models of the same name."""


@dataclass(frozen=True)
class BackboneOptions:
    """How a backbone is built for a run; each factory uses the fields that concern it."""

    small_images: bool = False
    """ResNets: the 3x3 stride-1 stem for inputs of about 32-64 px."""
    image_size: int = 224
    """ViTs: the size the position embeddings are made for (other sizes are interpolated)."""
    patch_size: int | None = None
    """ViTs: the patch side; None: ``default_patch_size(image_size)``."""
    drop_path: float = 0.0
    """ViTs and timm models: the stochastic-depth rate of the last block."""


def default_patch_size(image_size: int) -> int:
    """16 px patches at ImageNet sizes, 4 px at 64 px and below (8x8 patches on 32 px)."""
    return 4 if image_size <= 64 else 16


def backbone_options(settings: Mapping[str, Any]) -> BackboneOptions:
    """The options a run's config (or an encoder's description) records; runs from before
    ViTs have no ``patch_size`` or ``drop_path`` and took the defaults."""
    return BackboneOptions(
        small_images=bool(settings.get("small_images", False)),
        image_size=int(settings.get("image_size", settings.get("size", 224))),
        patch_size=settings.get("patch_size"),
        drop_path=float(settings.get("drop_path", 0.0)),
    )


def is_timm(name: str) -> bool:
    """Whether the backbone ``name`` is a timm model (a ViT, or ``timm:NAME``)."""
    return name in VIT_MODELS or name.startswith(TIMM_PREFIX)


def is_backbone(name: str) -> bool:
    return name in BACKBONES or name.startswith(TIMM_PREFIX)


def build_backbone(name: str, options: BackboneOptions) -> nn.Module:
    """The backbone ``name`` (a registered one or ``timm:NAME``), with random weights."""
    if name.startswith(TIMM_PREFIX):
        return _timm_backbone(name, options)
    return BACKBONES.create(name, options=options)


def check_backbone(name: str, options: BackboneOptions) -> None:
    """Refuse an unknown backbone or options that do not fit it, before a process starts."""
    if name.startswith(TIMM_PREFIX):
        import timm

        model = name.removeprefix(TIMM_PREFIX)
        if not timm.is_model(model):
            import difflib

            close = difflib.get_close_matches(model, timm.list_models(), n=3, cutoff=0.6)
            raise usage_error(
                f"timm has no model {model!r}"
                + (f"; did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""),
                "timm.list_models() names them all, e.g. timm:convnext_tiny",
            )
        return
    BACKBONES.get(name)
    patch = options.patch_size
    if patch is not None and not name.startswith("vit-"):
        raise usage_error(f"--patch-size applies to the ViTs, not to {name}")
    if patch is not None and (patch < 1 or options.image_size % patch):
        raise usage_error(
            f"--patch-size {patch} must divide --size {options.image_size}",
            f"e.g. --patch-size {default_patch_size(options.image_size)}",
        )
    if not 0 <= options.drop_path < 1:
        raise usage_error(f"--drop-path is a rate from 0 to below 1, got {options.drop_path}")


def timm_settings(name: str, options: BackboneOptions) -> tuple[str, dict[str, Any]]:
    """The timm model and the ``timm.create_model`` settings (beyond ``num_classes=0``) that
    build the backbone ``name`` (a ViT or ``timm:NAME``); ``KeyError`` for the others."""
    if name.startswith(TIMM_PREFIX):
        return name.removeprefix(TIMM_PREFIX), {}
    patch = options.patch_size or default_patch_size(options.image_size)
    settings = {"img_size": options.image_size, "patch_size": patch, "dynamic_img_size": True}
    return VIT_MODELS[name], settings


def _timm_backbone(name: str, options: BackboneOptions) -> nn.Module:
    """The timm model behind ``name``. A ViT is built at the run's image and patch size;
    images of other sizes (DINO's local crops) get interpolated position embeddings
    (``dynamic_img_size``). Attention runs through scaled_dot_product_attention (flash
    attention on GPUs). The classifier is left out (``num_classes=0``), nothing is downloaded
    (``pretrained=False``), and ``out_dim`` is set to the feature width."""
    import timm

    model_name, settings = timm_settings(name, options)
    model = timm.create_model(
        model_name, pretrained=False, num_classes=0, drop_path_rate=options.drop_path, **settings
    )
    model.out_dim = model.num_features
    return model


def _resnet(name: str, small_images: bool) -> nn.Module:
    """A torchvision ResNet without its classifier.

    ``small_images`` (for inputs of about 32-64 px) replaces the 7x7 stride-2 stem and the
    max-pool with one 3x3 stride-1 convolution, as in the SimCLR paper's CIFAR variant.
    """
    import torchvision
    from torch import nn

    model = getattr(torchvision.models, name)(weights=None)
    if small_images:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.out_dim = model.fc.in_features
    model.fc = nn.Identity()
    return model


@BACKBONES.register("resnet18", "torchvision ResNet-18, 512-d features (11.2M parameters)")
def resnet18(options: BackboneOptions) -> nn.Module:
    return _resnet("resnet18", options.small_images)


@BACKBONES.register("resnet50", "torchvision ResNet-50, 2048-d features (23.5M parameters)")
def resnet50(options: BackboneOptions) -> nn.Module:
    return _resnet("resnet50", options.small_images)


@BACKBONES.register(
    "vit-tiny", "timm ViT-Tiny, 192-d class token (5.5M parameters at 224 px); --patch-size"
)
def vit_tiny(options: BackboneOptions) -> nn.Module:
    return _timm_backbone("vit-tiny", options)


@BACKBONES.register(
    "vit-small", "timm ViT-Small, 384-d class token (21.7M parameters at 224 px); --patch-size"
)
def vit_small(options: BackboneOptions) -> nn.Module:
    return _timm_backbone("vit-small", options)


@BACKBONES.register(
    "vit-base", "timm ViT-Base, 768-d class token (85.8M parameters at 224 px); --patch-size"
)
def vit_base(options: BackboneOptions) -> nn.Module:
    return _timm_backbone("vit-base", options)


@BACKBONES.register("tiny-cnn", "4-layer CNN, 128-d features (0.1M parameters); tests, CPU")
def tiny_cnn(options: BackboneOptions) -> nn.Module:
    """The tiny CNN suits any size: it takes none of the options."""
    from sslcli.models.tiny_cnn import TinyCNN

    return TinyCNN()


@BACKBONES.register(
    "keypoint-cnn",
    "tiny-cnn plus where each channel fires (spatial soft-argmax), 384-d features "
    "(0.1M parameters); videos, CPU",
)
def keypoint_cnn(options: BackboneOptions) -> nn.Module:
    """The tiny CNN's blocks with a spatial soft-argmax beside the average pool."""
    from sslcli.models.tiny_cnn import KeypointCNN

    return KeypointCNN()


@BACKBONES.register(
    "small-cnn", "6-layer CNN, 256-d features (0.6M parameters); CPU, sees a whole 32 px image"
)
def small_cnn(options: BackboneOptions) -> nn.Module:
    """The tiny CNN with two more blocks: its features see all of a 32 px image."""
    from sslcli.models.tiny_cnn import SMALL_BLOCKS, TinyCNN

    return TinyCNN(blocks=SMALL_BLOCKS)
