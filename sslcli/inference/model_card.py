"""The model card of an export (``README.md``): what was trained on what, what was measured,
and the lines that load it and embed one image in the target library (the tests run them)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from sslcli import __version__
from sslcli.runs.loading import TrainedModel

IMAGE_PLACEHOLDER = "photo.jpg"
"""The image the card's embedding snippet reads."""
MEASURED = {
    "knn_accuracy": "kNN accuracy (k=200, cosine) on the evaluation images",
    "knn_raw_pixels": "kNN accuracy on the raw pixels (floor)",
    "knn_random_init": "kNN accuracy of the untrained encoder (floor)",
    "probe_accuracy": "online linear probe accuracy",
    "effective_rank": "effective rank of the embeddings (last logging step)",
    "embedding_std": "std of the normalised embeddings (last logging step)",
    "loss": "training loss (last logging step)",
}


def model_card(
    model: TrainedModel,
    format_: str,
    space: str,
    folder: Path,
    source: str,
    config: dict[str, Any],
    result: dict[str, Any],
    onnx_difference: float | None,
    dimensions: int,
) -> str:
    """The card's Markdown."""
    backbone = model.backbone_name or "?"
    stem = ", small-image stem" if model.small and backbone.startswith("resnet") else ""
    patch = f", {model.patch_size} px patches" if model.patch_size else ""
    rows = [
        (
            "format",
            format_
            + (
                f" (largest difference from torch {onnx_difference:.1g})"
                if onnx_difference is not None
                else ""
            ),
        ),
        ("method", model.method or "?"),
        ("backbone", f"{backbone}{stem}{patch}"),
        ("output", f"{dimensions}-d embeddings, the {space} space"),
        ("input", _preprocessing(model)),
        ("data", _data(config)),
        ("training", _training(config, result)),
        *((MEASURED[key], f"{result[key]:.4g}") for key in MEASURED if key in result),
        ("exported", f"{datetime.date.today()} by sslcli {__version__} from {source}"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    load, embed = snippets(model, format_, folder)
    return (
        f"# {backbone} encoder trained with sslcli ({model.method or '?'})\n\n"
        f"| | |\n| --- | --- |\n{table}\n\n"
        f"## Load it\n\n```python\n{load}\n```\n\n"
        f"## Embed an image\n\n```python\n{embed}\n```\n"
    )


def _preprocessing(model: TrainedModel) -> str:
    size = model.size
    mean = ", ".join(f"{value:.4g}" for value in model.mean)
    std = ", ".join(f"{value:.4g}" for value in model.std)
    return (
        f"RGB, shorter side resized to {size} px (bilinear), centre-cropped to {size} x {size}, "
        f"scaled to [0, 1], normalised with mean ({mean}) and std ({std}); sslcli's own "
        "commands resize in two steps (the stored image first), a few levels of 255 apart"
    )


def _data(config: dict[str, Any]) -> str:
    if "data" not in config:
        return "not recorded"
    images = f" ({config['images']})" if "images" in config else ""
    return f"{config['data']}{images}"


def _training(config: dict[str, Any], result: dict[str, Any]) -> str:
    if not config:
        return "not recorded"
    parts = [f"{config.get('epochs', '?')} epochs"]
    if "step" in result:
        parts.append(f"{result['step']} steps")
    parts.append(f"batch {config.get('batch_size', '?')} at {config.get('size', '?')} px")
    if config.get("preset"):
        parts.append(f"{config['preset']} views")
    if result.get("interrupted"):
        parts.append("interrupted before the end of its schedule")
    return ", ".join(parts)


def snippets(model: TrainedModel, format_: str, folder: Path) -> tuple[str, str]:
    """(the lines that load the export, the lines that embed one image with it)."""
    size = model.size
    preprocess = (
        "from PIL import Image\n"
        "from torchvision import transforms\n\n"
        "preprocess = transforms.Compose([\n"
        f"    transforms.Resize({size}), transforms.CenterCrop({size}), transforms.ToTensor(),\n"
        f"    transforms.Normalize({list(model.mean)}, {list(model.std)}),\n"
        "])\n"
        f'image = preprocess(Image.open("{IMAGE_PLACEHOLDER}").convert("RGB")).unsqueeze(0)\n'
    )
    if format_ == "onnx":
        load = (
            "import onnxruntime\n\n"
            f'session = onnxruntime.InferenceSession("{folder / "model.onnx"}")'
        )
        return load, preprocess + 'features = session.run(None, {"images": image.numpy()})[0]'
    from sslcli.models.backbones import TORCHVISION_MODELS, is_timm

    name = model.backbone_name or ""
    if format_ == "torchvision" or name in TORCHVISION_MODELS:
        load = _torchvision_load(model, format_, folder)
    elif format_ == "timm" or is_timm(name):
        load = _timm_load(model, format_, folder)
    else:  # sslcli's own small CNNs: sslcli rebuilds them
        load = (
            "from sslcli.runs.loading import load_model\n\n"
            f'model = load_model("{folder}").backbone.eval()'
        )
    return load, preprocess + "features = model(image)"


def _torchvision_load(model: TrainedModel, format_: str, folder: Path) -> str:
    name = model.backbone_name
    stem = (
        "model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # the small-image stem\n"
        "model.maxpool = torch.nn.Identity()\n"
        if model.small
        else ""
    )
    if format_ == "torchvision":
        weights = f'torch.load("{folder / "model.pth"}")'
        imports = "import torch\nimport torchvision\n"
    else:
        weights = f'load_file("{folder / "model.safetensors"}")'
        imports = "import torch\nimport torchvision\nfrom safetensors.torch import load_file\n"
    return (
        f"{imports}\n"
        f"model = torchvision.models.{name}()\n"
        f"{stem}"
        "model.fc = torch.nn.Identity()\n"
        f"model.load_state_dict({weights})\n"
        "model.eval()"
    )


def _timm_load(model: TrainedModel, format_: str, folder: Path) -> str:
    if format_ == "timm":
        return (
            "import timm\n\n"
            f'model = timm.create_model("local-dir:{folder}", pretrained=True).eval()'
        )
    from sslcli.models.backbones import BackboneOptions, timm_settings

    options = BackboneOptions(image_size=model.size, patch_size=model.patch_size)
    name, arguments = timm_settings(model.backbone_name or "", options)
    settings = "".join(f", {key}={value!r}" for key, value in arguments.items())
    return (
        "import timm\nfrom safetensors.torch import load_file\n\n"
        f'model = timm.create_model("{name}", num_classes=0{settings})\n'
        f'model.load_state_dict(load_file("{folder / "model.safetensors"}"))\n'
        "model.eval()"
    )
