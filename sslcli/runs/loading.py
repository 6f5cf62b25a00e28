"""What ``--model`` names for ``embed``, ``energy``, ``eval`` and ``sweep``, rebuilt and ready.

``--model`` may be:
- a run folder of ``train-siamese`` (its newest checkpoint: backbone and projector; or its
  ``encoder/`` export when the checkpoints are gone),
- a checkpoint folder of such a run, or an ``encoder/`` export,
- a backbone name from the registry (random weights: the floor any training must beat),
- a folder saved by transformers or a hub id ``owner/name`` of a vision model (its pooled
  output, or its first token, is the embedding),
- nothing: the newest run under ``./runs``.

Every model embeds images the same way: decoded, the shorter side scaled to the model's
size and centre-cropped (as training decoded them), normalised with the model's mean and std.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from torch import nn

from sslcli.engine.checkpoint import damaged
from sslcli.engine.hub import hub_unreachable, looks_like_hub_id, looks_like_path
from sslcli.errors import SSLError, runtime_error, usage_error
from sslcli.runs.layout import ENCODER_FOLDER, check_format, newest_run

if TYPE_CHECKING:
    from sslcli.data.clips import Continuation
    from sslcli.methods.latent import LatentPredictive
    from sslcli.methods.masked_latent import MaskedLatent

SPACES = ("projector", "backbone", "patch")
"""Where embeddings are read: after the projection head, the backbone's features (a ViT's
class token), or a ViT's patch tokens averaged."""


class PatchMean(nn.Module):
    """A ViT's patch tokens (after its last norm, without the class token) averaged: timm's
    ``global_pool="avg"``, the half of DINOv2's linear-probe input beside the class token."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_features(images)[:, self.vit.num_prefix_tokens :].mean(dim=1)


@dataclass
class TrainedModel:
    backbone: nn.Module
    size: int
    """Side in pixels of the square images the model takes."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str
    """Where the weights came from, in words, e.g. ``run runs/a (simclr, resnet18, step 40)``."""
    projector: nn.Module | None = None
    method: str | None = None
    view_settings: dict[str, Any] = field(default_factory=dict)
    """The training run's ``preset`` and ``view_changes``, for augmented views at test time."""
    latent: LatentPredictive | None = None
    """The whole latent-variable model (predictor, targets) of a ``train-latent`` run."""
    masked: MaskedLatent | None = None
    """The whole model of a ``train-latent --objective masked`` run."""
    continuation: Continuation | None = None
    """How a run trained on videos pairs a past clip with its future (None: image pairs)."""
    fps: float | None = None
    """The rate a run trained on videos sampled their frames at (None: trained on images)."""
    backbone_name: str | None = None
    """The registry name of the backbone of a model sslcli trained (None: another)."""
    small: bool | None = None
    """Whether that backbone has the small-image stem."""
    patch_size: int | None = None
    """That backbone's patch side (ViTs)."""

    def encoder(self, space: str) -> nn.Module:
        """The module mapping normalised images to embeddings in ``space``, in eval mode."""
        if space not in SPACES:
            raise usage_error(f"unknown space {space!r}", f"choose one of {', '.join(SPACES)}")
        if space == "backbone":
            return self.backbone.eval()
        if space == "patch":
            if not hasattr(self.backbone, "num_prefix_tokens"):
                raise usage_error(
                    f"{self.description} has no patch tokens",
                    "--space patch reads a ViT's (vit-tiny, vit-small, vit-base)",
                )
            return PatchMean(self.backbone).eval()
        if self.projector is None:
            raise usage_error(
                f"{self.description} has no projection head",
                "use --space backbone, or a run folder of train-siamese with its checkpoints",
            )
        return nn.Sequential(self.backbone, self.projector).eval()

    def encoder_description(self) -> dict[str, Any]:
        """How to rebuild and feed the backbone (an ``encoder/`` folder's config), for a
        model sslcli trained."""
        return {
            "backbone": self.backbone_name,
            "small_images": self.small,
            "patch_size": self.patch_size,
            "out_dim": self.backbone.out_dim,
            "image_size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "method": self.method,
        }

    def default_space(self) -> str:
        return "projector" if self.projector is not None else "backbone"


def load_model(
    name: str | None, size: int | None = None, runs: Path = Path("runs")
) -> TrainedModel:
    """Load what ``--model NAME`` means; ``size`` overrides the model's own image size."""
    from sslcli.models.backbones import BACKBONES, is_backbone

    if name is None:
        model = _load_path(newest_run(runs))
    elif Path(name).exists():
        model = _load_path(Path(name))
    elif is_backbone(name):
        model = _random_backbone(name, size or 224)
    elif looks_like_hub_id(name):
        model = _load_transformers(name)
    elif looks_like_path(name):
        raise usage_error(f"no such model folder: {name}", _newest_run_hint(runs))
    else:
        raise BACKBONES.unknown(
            name, hint="or give a run folder, a checkpoint folder or a hub id owner/name"
        )
    if size is not None:
        model.size = size
    return model


def _newest_run_hint(runs: Path) -> str:
    try:
        return f"the newest run is {newest_run(runs)}"
    except SSLError:
        return "give a run folder, a checkpoint or encoder folder, or a transformers folder"


def _load_path(path: Path) -> TrainedModel:
    from sslcli.engine.checkpoint import (
        CHECKPOINTS_FOLDER,
        LATEST_FILE,
        load_checkpoint,
        resolve_resume,
    )

    if (path / CHECKPOINTS_FOLDER / LATEST_FILE).is_file():
        checkpoint = load_checkpoint(resolve_resume(path), trainer_state=False)
        return _from_checkpoint(checkpoint, f"run {path}")
    if (path / ENCODER_FOLDER / "config.json").is_file():
        encoder = load_checkpoint(path / ENCODER_FOLDER, trainer_state=False)
        return _from_checkpoint(encoder, f"run {path}")
    config = _read_config(path)
    if "model_type" in config:
        return _load_transformers(str(path))
    return _from_checkpoint(load_checkpoint(path, trainer_state=False), str(path))


def _read_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if path.is_file() or not config_file.is_file():
        raise usage_error(
            f"{path} is not a model",
            "give a run folder, a checkpoint or encoder folder, or a transformers model folder",
        )
    try:
        return json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise usage_error(f"cannot read {config_file}: {error}") from None


def _from_checkpoint(checkpoint: Any, where: str) -> TrainedModel:
    """A trainer checkpoint (the whole method) or an encoder export (the backbone alone)."""
    from sslcli.models.backbones import backbone_options, build_backbone

    config = checkpoint.config
    if "backbone" not in config or ("size" not in config and "image_size" not in config):
        raise usage_error(
            f"{checkpoint.path} is not a checkpoint of sslcli",
            "give a run folder of train-siamese, or its encoder/ folder",
        )
    check_format(config, checkpoint.path)
    backbone = build_backbone(config["backbone"], backbone_options(config))
    step = config.get("step")
    label = f"{where} ({config.get('method', '?')}, {config['backbone']}"
    label += f", step {step})" if step is not None else ", encoder export)"
    model = TrainedModel(
        backbone=backbone,
        size=int(config.get("image_size", config.get("size", 224))),
        mean=_statistic(config, "mean", checkpoint.path),
        std=_statistic(config, "std", checkpoint.path),
        description=label,
        method=config.get("method"),
        view_settings={key: config[key] for key in ("preset", "view_changes") if key in config},
        backbone_name=config["backbone"],
        small=config["small_images"],
        patch_size=config.get("patch_size"),
    )
    if "out_dim" in config:  # an encoder export: the backbone's weights alone
        _load_weights(backbone, checkpoint.weights, checkpoint.path)
        return model
    from sslcli.methods import METHODS

    method = METHODS.create(config["method"])(backbone, **config.get("method_options", {}))
    _load_weights(method, checkpoint.weights, checkpoint.path)
    model.projector = getattr(method, "projector", None)
    if config["method"] == "latent":
        model.latent = method.eval()
    if config["method"] == "masked-latent":
        model.masked = method.eval()
    if config.get("fps") is not None:
        model.fps = float(config["fps"])
    if config.get("pairs") == "future":
        from sslcli.data.clips import Continuation, horizon_frames

        fps = float(config["fps"])
        frames = config["method_options"]["context_frames"]
        model.continuation = Continuation(frames, horizon_frames(config["horizon"], fps), fps)
    return model


def _statistic(config: dict[str, Any], name: str, where: Path) -> tuple[float, float, float]:
    """The run's recorded normalisation: never guessed, since a wrong one skews every
    embedding without an error."""
    value = config.get(name)
    if not (isinstance(value, list) and len(value) == 3):
        raise usage_error(
            f"{where / 'config.json'} does not record the {name} its images were normalised with",
            'a run of sslcli records "mean" and "std" (3 numbers each); was the file edited?',
        )
    return (float(value[0]), float(value[1]), float(value[2]))


def _load_weights(module: nn.Module, weights: dict[str, torch.Tensor], where: Path) -> None:
    try:
        module.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise usage_error(
            f"the weights in {where} do not fit the model its config describes: {first}",
            "was the checkpoint written by another version of sslcli or edited?",
        ) from None


def _random_backbone(name: str, size: int) -> TrainedModel:
    """Random weights drawn from the seed torch was last seeded with (``torch.manual_seed``;
    the commands seed it with ``--seed``) and from nothing else: draws made since do not
    change them, and drawing them leaves torch's generator as it was."""
    from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD
    from sslcli.models.backbones import BackboneOptions, build_backbone, check_backbone

    small = size <= 64
    options = BackboneOptions(small_images=small, image_size=size)
    check_backbone(name, options)
    seed = torch.initial_seed()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = build_backbone(name, options)
    return TrainedModel(
        backbone=backbone,
        size=size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        description=f"{name} with random weights (seed {seed}, {size} px"
        + (", small-image stem)" if small else ")"),
    )


class _PooledVisionModel(nn.Module):
    """A transformers vision model as a backbone: pooled output, else the first token."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=images)
        pooled = getattr(output, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        hidden = output.last_hidden_state
        return hidden[:, 0] if hidden.ndim == 3 else hidden.mean(dim=(2, 3))


def _load_transformers(name: str) -> TrainedModel:
    try:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel
    except ImportError:
        raise usage_error(
            f"loading {name} needs transformers", "pip install transformers"
        ) from None
    # a hub id is read from the local cache alone when the hub cannot be asked right now
    local = not Path(name).is_dir() and hub_unreachable(name)
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=local)
        model = AutoModel.from_pretrained(name, local_files_only=local)
    except pickle.UnpicklingError:
        pickled = sorted(Path(name).glob("*.bin")) if Path(name).is_dir() else []
        raise usage_error(
            f"{pickled[0] if pickled else name} holds non-tensor objects; refusing to load it "
            "(that could run code)",
            "save the model as safetensors (save_pretrained's default)",
        ) from None
    except SafetensorError as error:
        raise damaged(Path(name), error) from None
    except OSError as error:
        if local:
            raise runtime_error(
                f"cannot load vision model {name}: the model hub cannot be reached and the "
                "model is not in the local cache",
                "connect to the network (and unset HF_HUB_OFFLINE), or give a local folder",
            ) from None
        raise usage_error(
            f"cannot load vision model {name}: {str(error).splitlines()[0]}",
            "check the id and that the hub is reachable (HF_HUB_OFFLINE=1 forbids it), or "
            "give a local folder",
        ) from None
    try:
        processor = AutoImageProcessor.from_pretrained(name, local_files_only=local)
    except (OSError, ValueError):
        processor = None
    size, mean, std = _preprocessing(config, processor)
    return TrainedModel(
        backbone=_PooledVisionModel(model).eval(),
        size=size,
        mean=mean,
        std=std,
        description=f"{name} ({type(model).__name__}, transformers)",
    )


def _preprocessing(config: Any, processor: Any) -> tuple[int, tuple, tuple]:
    """Image side, mean and std from the image processor, else the config and ImageNet's."""
    from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD

    size = getattr(config, "image_size", 224)
    if processor is None:
        return int(size), IMAGENET_MEAN, IMAGENET_STD
    crop = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
    size = crop.get("height") or crop.get("shortest_edge") or size
    mean = tuple(getattr(processor, "image_mean", None) or IMAGENET_MEAN)
    std = tuple(getattr(processor, "image_std", None) or IMAGENET_STD)
    return int(size), mean, std
