"""A trained encoder written for the libraries users already have (``sslcli export``).

Formats (each a folder with the weights and a model card, ``README.md``):

- ``torchvision``: ``model.pth``, the ResNet's plain ``state_dict`` in torchvision's names
  (the classifier ``fc`` is an identity, so it has no weights);
- ``timm``: timm's own export (``timm.models.save_for_hf``: ``config.json`` with the
  architecture, its arguments and the preprocessing, and ``model.safetensors``), which
  ``timm.create_model("local-dir:FOLDER", pretrained=True)`` rebuilds;
- ``safetensors``: sslcli's encoder folder (``config.json`` + ``model.safetensors`` in the
  backbone library's names), which ``--model FOLDER`` loads back;
- ``onnx``: ``model.onnx`` mapping normalised images (a free batch axis) to embeddings in any
  space, the preprocessing in its metadata, checked against torch with onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sslcli import __version__
from sslcli.engine.atomic import atomic_folder, write_failure
from sslcli.errors import runtime_error, usage_error
from sslcli.runs.loading import SPACES, TrainedModel

FORMATS = ("torchvision", "timm", "safetensors", "onnx")
CARD_FILE = "README.md"
ONNX_FILE = "model.onnx"
TORCHVISION_FILE = "model.pth"
ONNX_TOLERANCE = 1e-4
"""The largest difference from torch an ONNX export may show on its check batch."""
CHECK_BATCH = 4


@dataclass(frozen=True)
class Exported:
    folder: Path
    format: str
    space: str
    dimensions: int
    files: list[str]
    """The files written, relative to ``folder``."""
    onnx_difference: float | None = None
    """ONNX: the largest absolute difference from torch's output on the check batch."""


def check_export(model: TrainedModel, format_: str, space: str) -> None:
    """Refuse a format or space that ``model`` cannot be written in, before any work."""
    from sslcli.models.backbones import TORCHVISION_MODELS, is_timm

    if format_ not in FORMATS:
        raise usage_error(f"unknown format {format_!r}", f"choose one of {', '.join(FORMATS)}")
    if space not in SPACES:
        raise usage_error(f"unknown space {space!r}", f"choose one of {', '.join(SPACES)}")
    name = model.backbone_name
    if name is None:
        raise usage_error(
            f"{model.description} was not trained by sslcli",
            "export a run folder of train-siamese or train-latent (or a checkpoint of one)",
        )
    if format_ != "onnx" and space != "backbone":
        raise usage_error(
            f"--format {format_} holds the backbone alone, not --space {space}",
            "--format onnx carries any space (the projection head is sslcli's own module)",
        )
    model.encoder(space)  # the space's own refusals (no projector, no patch tokens)
    if format_ == "torchvision" and name not in TORCHVISION_MODELS:
        raise usage_error(
            f"{name} is not a torchvision model",
            _other_formats(is_timm(name)),
        )
    if format_ == "timm" and not is_timm(name):
        raise usage_error(
            f"{name} is not a timm model", _other_formats(False, name in TORCHVISION_MODELS)
        )
    if format_ == "onnx":
        from sslcli.engine.onnx import require

        for package in ("onnx", "onnxscript", "onnxruntime"):
            require(package)


def _other_formats(timm: bool, torchvision: bool = False) -> str:
    library = "--format timm, " if timm else "--format torchvision, " if torchvision else ""
    return f"use {library}--format safetensors (sslcli) or --format onnx (any runtime)"


def export_model(
    model: TrainedModel,
    format_: str,
    space: str,
    out: Path,
    source: str,
    run: tuple[dict[str, Any], dict[str, Any]],
) -> Exported:
    """Write ``model`` in ``format_`` to the folder ``out`` (atomically: a kill leaves the old
    folder or the new one), with a model card describing ``source`` and its ``run``'s
    settings and result."""
    from sslcli.inference.model_card import model_card

    check_export(model, format_, space)
    writer = {
        "torchvision": _torchvision,
        "timm": _timm,
        "safetensors": _safetensors,
        "onnx": _onnx,
    }[format_]
    dimensions = _dimensions(model, space)
    config, result = run
    try:
        with atomic_folder(out) as folder:
            difference = writer(model, space, folder)
            card = model_card(
                model, format_, space, out, source, config, result, difference, dimensions
            )
            (folder / CARD_FILE).write_text(card, encoding="utf-8")
            files = sorted(path.name for path in folder.iterdir())
    except OSError as error:
        raise runtime_error(write_failure(out, error), "free space and export again") from None
    return Exported(out, format_, space, dimensions, files, difference)


def _dimensions(model: TrainedModel, space: str) -> int:
    with torch.inference_mode():
        return int(model.encoder(space)(_check_images(model, 1)).shape[1])


def _check_images(model: TrainedModel, count: int) -> torch.Tensor:
    """Normalised images of the model's size (a fixed draw: the check is repeatable)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(count, 3, model.size, model.size, generator=generator)


def _torchvision(model: TrainedModel, space: str, folder: Path) -> None:
    torch.save(model.backbone.state_dict(), folder / TORCHVISION_FILE)


def _timm(model: TrainedModel, space: str, folder: Path) -> None:
    from timm.models import save_for_hf

    from sslcli.models.backbones import BackboneOptions, timm_settings

    options = BackboneOptions(image_size=model.size, patch_size=model.patch_size)
    _, arguments = timm_settings(model.backbone_name or "", options)
    preprocessing = {
        "input_size": (3, model.size, model.size),
        "mean": model.mean,
        "std": model.std,
        "crop_pct": 1.0,  # the shorter side resized to the size, then centre-cropped
        "interpolation": "bilinear",
    }
    save_for_hf(
        model.backbone,
        str(folder),
        model_args=arguments,
        safe_serialization=True,
        data_config=preprocessing,
    )


def _safetensors(model: TrainedModel, space: str, folder: Path) -> None:
    from sslcli.engine.checkpoint import save_checkpoint
    from sslcli.runs.layout import versioned

    save_checkpoint(folder, model.backbone.state_dict(), versioned(model.encoder_description()))


def _onnx(model: TrainedModel, space: str, folder: Path) -> float:
    from sslcli.engine.onnx import largest_difference, write_onnx

    encoder = model.encoder(space)
    path = folder / ONNX_FILE
    write_onnx(
        encoder,
        (_check_images(model, 2),),
        path,
        input_names=["images"],
        output_name="embeddings",
        free_axes={"images": {0: "batch"}},
        metadata=onnx_metadata(model, space),
    )
    difference = largest_difference(path, encoder, {"images": _check_images(model, CHECK_BATCH)})
    if not difference <= ONNX_TOLERANCE:
        raise runtime_error(
            f"the ONNX graph differs from torch by {difference:.2g} (more than "
            f"{ONNX_TOLERANCE:g}) on {CHECK_BATCH} images; nothing was written",
            "report this with the run's backbone; --format safetensors or torchvision/timm "
            "keep the weights exactly",
        )
    return difference


def onnx_metadata(model: TrainedModel, space: str) -> dict[str, str]:
    """How to feed the ONNX graph, and what it gives (strings, as ONNX stores them)."""
    size = model.size
    preprocessing = (
        f"RGB; shorter side resized to {size} px (bilinear, antialiased), centre-cropped to "
        f"{size} x {size}; scaled to [0, 1]; normalised per channel with mean and std"
    )
    fields: dict[str, Any] = {
        "producer": f"sslcli {__version__}",
        "input": f"images: float32 (batch, 3, {size}, {size})",
        "output": f"embeddings: float32 (batch, dimensions), the {space} space",
        "preprocessing": preprocessing,
        "image_size": size,
        "mean": list(model.mean),
        "std": list(model.std),
        "space": space,
        "backbone": model.backbone_name,
        "method": model.method,
    }
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in fields.items()
    }
