"""The settings of a training run: what the user asked for, and the run's resolved config.

A :class:`TrainingRequest` holds the options as given (None: the default); ``resolve_config``
fills the method's published defaults, scales the learning rate to the global batch and
validates everything before a process starts. The :class:`TrainingConfig` it returns is what
``config.json`` and every checkpoint of the run record.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sslcli.errors import usage_error

if TYPE_CHECKING:
    from sslcli.methods.base import TrainingDefaults


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be above 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _fraction(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"


def _share(value: Any) -> str | None:
    return None if 0 < value < 1 else "must be above 0 and below 1"


def _regulariser(value: Any) -> str | None:
    return None if value in ("l2", "l1") else "must be l2 or l1"


def _named(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must name a model"


def _latent_target(value: Any) -> str | None:
    return None if value in ("online", "ema") else "must be online or ema"


_METHOD_OPTIONS = {
    "temperature": ("--temperature", _positive),
    "hidden_dim": ("--projector-hidden-dim", _positive),
    "projection_dim": ("--projector-dim", _positive),
    "latent_dim": ("--latent-dim", _non_negative),
    "z_steps": ("--z-steps", _non_negative),
    "z_lr": ("--z-lr", _positive),
    "z_reg": ("--z-reg", _regulariser),
    "z_weight": ("--z-weight", _non_negative),
    "z_dropout": ("--z-dropout", _fraction),
    "target": ("--target", _latent_target),
    "prototypes": ("--prototypes", _positive),
    "teacher_temp": ("--teacher-temp", _positive),
    "sigreg_weight": ("--sigreg-weight", _fraction),
    "mask_ratio": ("--mask-ratio", _share),
    "teacher": ("--teacher", _named),
    "teacher_momentum": ("--teacher-momentum", _fraction),
    "context_frames": ("--context-frames", _positive),
}
_VIDEO_OPTIONS = ("context_frames",)
"""Method options of video pairs alone: image runs do not record them (their configs, and
so their resumes, stay as they were before videos)."""
PAIRS = ("views", "future")
"""``--pairs``: two augmented views of an image, or a video's past clip and future frame."""
DEFAULT_CONTEXT_FRAMES = 2
"""Video pairs' context frames by default: one frame shows no motion, two its direction."""
LATENT_METHODS = ("latent", "masked-latent", "mae")
"""The methods ``train-latent`` trains (its ``--objective views``, ``masked``, and ``masked
--predict pixels``)."""
RESUME_KEYS = (
    "method",
    "backbone",
    "small_images",
    "patch_size",
    "size",
    "store_size",
    "preset",
    "local_crops",
    "local_size",
    "view_changes",
    "batch_size",
    "seed",
    "optimizer",
    "method_options",
    "images",
    "pairs",
    "fps",
    "horizon",
)
"""Settings a resumed run must share with its checkpoint: they shape the model, the optimiser
state or the data order (``images`` fingerprints the decoded image set)."""
AUTO_BATCH = 0
"""``--batch-size auto``: the worker measures the largest global batch that fits and writes
it, and the learning rate scaled to it (0 until then), into the run's config before the
first step."""

ADDED_LATER = (
    "streams",
    "shard_url",
    "patch_size",
    "drop_path",
    "local_crops",
    "local_size",
    "final_weight_decay",
    "compile",
    "time_budget",
    "steps",
    "tensorboard",
    "pairs",
    "fps",
    "horizon",
)
"""Settings newer than some runs: a run's config without one resumes with the default (they
concern packed shards, ViTs and multi-crop, which those runs did not use)."""
REPLANNED_ON_RESUME = (
    "epochs",
    "lr_per_256",
    "weight_decay",
    "final_weight_decay",
    "warmup_epochs",
    "precision",
)
"""Settings a resumed run may change when given explicitly: the schedule is re-planned."""


@dataclass(frozen=True)
class TrainingRequest:
    """The options of ``train-siamese``/``train-latent`` as given; None = the default."""

    data: str | None
    """The image folder; None only when resuming (the run's own folder)."""
    method: str
    backbone: str
    size: int
    small_images: bool | None
    """3x3 stride-1 ResNet stem; None: on for ``size`` <= 64."""
    preset: str | None
    """None: the method's (``TrainingDefaults.preset``)."""
    view_changes: dict[str, Any]
    """Augmentation fields set on the command line, over the preset's."""
    epochs: int
    batch_size: int
    """The GLOBAL batch: summed over every process of the run; ``AUTO_BATCH``: measured."""
    optimizer: str | None
    lr_per_256: float | None
    weight_decay: float | None
    warmup_epochs: int | None
    method_options: dict[str, Any]
    """The method's own options that were given (the method's defaults fill the rest)."""
    seed: int
    precision: str
    knn_every: int
    eval_dir: str | None
    online_probe: bool
    checkpoint_every: int
    stop_on_collapse: bool
    strict: bool
    cache_dir: str | None
    """Where decoded images are cached; None: the user's cache folder."""
    store_size: int | None = None
    """The image store's shorter side; None: ``default_store_size(size)``."""
    init: str | None = None
    """A trained encoder (run, checkpoint or encoder folder) the backbone starts from."""
    streams: int | None = None
    """Canonical streams that read packed shards; None: ``DEFAULT_STREAMS``."""
    shard_url: str | None = None
    """Where the shards are, a URL template with ``{name}`` (``pipe:`` too); None: beside the
    manifest."""
    patch_size: int | None = None
    """ViTs: the patch side; None: ``default_patch_size(size)``."""
    drop_path: float = 0.0
    """ViTs and timm models: the stochastic-depth rate."""
    local_crops: int | None = None
    """Multi-crop methods: local crops after the 2 global views; None: the preset's."""
    local_size: int | None = None
    """The local crops' side; None: ``default_local_size(size)``."""
    final_weight_decay: float | None = None
    """None: the method's (constant unless it schedules one)."""
    compile: bool = False
    """Compile the backbone with torch.compile."""
    time_budget: float | None = None
    """Seconds the run may take, start-up included; its steps are planned from it."""
    steps: int | None = None
    """A resumed run's steps, as its time budget planned them (never given by the user)."""
    tensorboard: bool = False
    """Mirror the metrics (and views, embeddings) into TensorBoard event files."""
    pairs: str = "views"
    """What a training pair is: ``views`` of an image, or a video's ``future``."""
    fps: float | None = None
    """Videos: the rate frames are sampled at; None: ``DEFAULT_FPS``."""
    horizon: float | None = None
    """Video pairs: seconds from the past's last frame to the future; None: the default."""
    explicit: frozenset[str] = frozenset()
    """The fields the user gave: on resume, the others come from the run's config."""


@dataclass(frozen=True)
class TrainingConfig:
    """A run's resolved settings: every default filled, as ``config.json`` records them."""

    data: str
    method: str
    backbone: str
    size: int
    store_size: int
    """The shorter side images are stored at (never enlarged); views are cut from them."""
    small_images: bool
    preset: str
    epochs: int
    batch_size: int
    """The GLOBAL batch: summed over every process of the run."""
    optimizer: str
    lr_per_256: float
    lr: float
    """The learning rate used: lr_per_256 x batch_size / 256."""
    weight_decay: float
    warmup_epochs: int
    method_options: dict[str, Any]
    view_changes: dict[str, Any]
    """Augmentation fields set on the command line, over the preset's."""
    seed: int
    precision: str
    world_size: int
    knn_every: int
    eval_dir: str | None
    cache_dir: str
    strict: bool
    checkpoint_every: int
    """Steps between checkpoints; 0 = once per epoch."""
    stop_on_collapse: bool
    online_probe: bool
    """Train a linear classifier on the detached features as training goes (labelled data)."""
    init: str | None
    """The trained encoder the backbone started from (None: random initialisation)."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    """The channel statistics the views are standardised with (ImageNet's)."""
    streams: int = 8
    """Canonical streams reading packed shards (the data order depends on them)."""
    shard_url: str | None = None
    """Where packed shards are read from (None: beside their manifest; not for image folders)."""
    patch_size: int | None = None
    """The ViT's patch side (None: the backbone has no patches)."""
    drop_path: float = 0.0
    """The stochastic-depth rate of ViTs and timm models."""
    local_crops: int = 0
    """Local crops after the 2 global views (multi-crop methods)."""
    local_size: int | None = None
    """The side of the local crops (None: no local crops)."""
    final_weight_decay: float | None = None
    """The weight decay a cosine raises ``weight_decay`` to by the end (None: constant)."""
    compile: bool = False
    """Whether the backbone runs compiled (torch.compile; the weights are the same)."""
    time_budget: float | None = None
    """The seconds the run was given (``--time-budget``); None: ``epochs`` sets its length."""
    steps: int | None = None
    """The steps the time budget planned (and ``epochs`` is then their whole epochs, the
    last maybe partial); None: ``epochs`` whole epochs, or not planned yet."""
    tensorboard: bool = False
    """Whether the run writes TensorBoard event files (``RUN/tensorboard/``)."""
    pairs: str = "views"
    """``views``: two augmented views of an image; ``future``: a video's past clip and the
    frame ``horizon`` seconds after it (``data.clips``)."""
    fps: float | None = None
    """Videos: the rate their frames are sampled at, for video pairs or views of the frames
    (None: images)."""
    horizon: float | None = None
    """Video pairs: seconds from the past clip's last frame to the future frame."""

    @property
    def per_device_batch(self) -> int:
        return self.batch_size // self.world_size

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (tuples as lists), as saved in config.json and checkpoints."""
        return json.loads(json.dumps(asdict(self)))


def continued(request: TrainingRequest, saved: Mapping[str, Any]) -> TrainingRequest:
    """The request of a resumed run: every field the user did not give comes from the run's
    config ``saved``; the method's options and view changes given are laid over the run's."""
    if "time_budget" in request.explicit:
        raise usage_error(
            "a resumed run keeps the steps its time budget planned; --time-budget starts runs",
            "leave out --time-budget, or give --epochs to re-plan the run by epochs",
        )
    values: dict[str, Any] = {}
    for name in (field.name for field in fields(TrainingRequest)):
        if name in ("init", "explicit") or (name in ADDED_LATER and name not in saved):
            values[name] = getattr(request, name)
        elif name in ("method_options", "view_changes"):
            values[name] = saved[name] | getattr(request, name)
        elif name == "batch_size" and request.batch_size == AUTO_BATCH:
            values[name] = saved[name]  # the batch its start measured
        elif name in request.explicit:
            values[name] = getattr(request, name)
        elif name not in saved:
            raise usage_error(
                f"the run was trained by an earlier version of sslcli, without the {name} "
                "setting: resuming it would not continue the same training",
                "start a new run from its encoder with --init RUN (the weights carry over)",
            )
        else:
            values[name] = saved[name]
    if "epochs" in request.explicit:  # re-planned by epochs: the budget's plan is dropped
        values |= {"time_budget": None, "steps": None}
    return TrainingRequest(**values)


def replanned(request: TrainingRequest, saved: Mapping[str, Any]) -> dict[str, tuple]:
    """The schedule settings a resumed run changes: name -> (the run's, the new)."""
    return {
        name: (saved[name], getattr(request, name))
        for name in REPLANNED_ON_RESUME
        if name in request.explicit and getattr(request, name) != saved[name]
    }


def default_warmup(epochs: int, defaults: TrainingDefaults) -> int:
    """Warm-up epochs when none are given: a tenth of the run, at most 10, and at least the
    method's ``min_warmup_epochs`` (at most half of the run)."""
    return max(min(10, epochs // 10), min(defaults.min_warmup_epochs, epochs // 2))


def default_local_size(size: int) -> int:
    """DINO's 96 px local crops for 224 px global ones: 3/7 of the side, rounded to a
    multiple of 8 (16 px for 32 px views)."""
    return max(8, 8 * round(size * 3 / 7 / 8))


def _local_crops(
    request: TrainingRequest, method: type, preset_views: int, patch_size: int | None
) -> tuple[int, int | None]:
    """(local crops, their side) for the request: the preset's crops for a multi-crop method,
    none for the others."""
    crops = request.local_crops
    if crops is None:
        crops = preset_views if method.multi_crop else 0
    if crops < 0:
        raise usage_error(f"--local-crops must be 0 or more, got {crops}")
    if crops and not method.multi_crop:
        raise usage_error(
            f"{request.method} takes 2 views, without local crops",
            "leave out --local-crops, or train with --method dino, ibot or lejepa",
        )
    if not crops:
        return 0, None
    size = request.local_size or default_local_size(request.size)
    if not 8 <= size <= request.size:
        raise usage_error(f"--local-size must be from 8 to --size {request.size}, got {size}")
    if patch_size is not None and size % patch_size:
        raise usage_error(
            f"--local-size {size} must be a multiple of --patch-size {patch_size}",
            f"e.g. --local-size {max(patch_size, size // patch_size * patch_size)}",
        )
    return crops, size


def _teacher(name: str | None) -> str:
    """``--teacher``: an existing folder, made absolute (a resumed run may start elsewhere),
    or a hub id as given."""
    from sslcli.engine.hub import hub_cached, hub_unreachable, looks_like_hub_id

    if name is None:
        raise usage_error(
            "--method distill learns from a teacher: give --teacher RUN_OR_FOLDER",
            "an sslcli run or encoder folder, or a transformers vision model folder",
        )
    if Path(name).exists():
        return str(Path(name).resolve())
    if looks_like_hub_id(name) and not (hub_unreachable(name) and not hub_cached(name)):
        return name
    raise usage_error(
        f"no such teacher: {name}",
        "give a run folder or a model folder"
        + (
            " (as a hub id it is not in the local cache, and the hub cannot be reached)"
            if looks_like_hub_id(name)
            else ""
        ),
    )


def resolve_config(request: TrainingRequest, world_size: int) -> TrainingConfig:
    """Fill method defaults, scale the learning rate to the global batch, validate."""
    from sslcli.augment.presets import PRESETS
    from sslcli.data.cache import default_cache_dir
    from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD
    from sslcli.data.shards import (
        DEFAULT_STREAMS,
        MANIFEST_FILE,
        check_streams,
        manifest_path,
        read_manifest,
    )
    from sslcli.data.store import default_store_size
    from sslcli.engine.optim import OPTIMIZERS, scaled_lr
    from sslcli.methods import METHODS
    from sslcli.models.backbones import BackboneOptions, check_backbone, default_patch_size

    if request.data is None:
        raise usage_error("give DATA, a folder of images", "or continue a run with --resume RUN")
    fps, horizon = _video_pairs(request)
    if request.tensorboard:
        from sslcli.engine.tensorboard import require_tensorboard

        require_tensorboard()
    store_size = request.store_size or default_store_size(request.size)
    streams = request.streams or DEFAULT_STREAMS
    manifest = manifest_path(Path(request.data))
    if manifest is not None:
        # packed shards hold images at the resolution they were packed at
        packed = read_manifest(manifest).resolution
        if request.store_size is not None and request.store_size != packed:
            raise usage_error(
                f"--store-size {request.store_size} does not fit {request.data}, packed at "
                f"{packed} px",
                f"leave out --store-size, or pack again with --store-size {request.store_size}",
            )
        store_size = packed
        if request.batch_size != AUTO_BATCH:  # an auto batch is measured in whole streams
            check_streams(streams, world_size, request.batch_size)
    elif request.shard_url is not None:
        raise usage_error(
            f"--shard-url reads packed shards, and {request.data} has no {MANIFEST_FILE}",
            "give the folder sslcli pack wrote (or its shards.json), or leave out --shard-url",
        )
    patch_size = request.patch_size
    if patch_size is None and request.backbone.startswith("vit-"):
        patch_size = default_patch_size(request.size)
    options = BackboneOptions(
        image_size=request.size, patch_size=patch_size, drop_path=request.drop_path
    )
    check_backbone(request.backbone, options)
    method = METHODS.create(request.method)
    if method.needs_patches and not request.backbone.startswith("vit-"):
        raise usage_error(
            f"{request.method} masks the patches of a ViT, and {request.backbone} has none",
            "train it with --backbone vit-tiny, vit-small or vit-base",
        )
    defaults = method.defaults
    method_given = dict(request.method_options)
    if request.pairs == "future":
        method_given.setdefault("context_frames", DEFAULT_CONTEXT_FRAMES)
    if method.takes_teacher:
        method_given["teacher"] = _teacher(request.method_options.get("teacher"))
    preset_name = request.preset or defaults.preset
    preset = PRESETS.create(preset_name)
    local_crops, local_size = _local_crops(
        request, method, preset.default_views - preset.global_views, patch_size
    )
    accepted = inspect.signature(method.__init__).parameters
    for name, value in request.method_options.items():
        flag, check = _METHOD_OPTIONS[name]
        if name not in accepted:
            raise usage_error(f"{flag} does not apply to {request.method}")
        problem = check(value)
        if problem:
            raise usage_error(f"{flag} {problem}, got {value}")
    # every option the method takes is recorded, defaults too: a run keeps its settings when
    # a later version changes a default (energy, resume and eval rebuild it from them)
    recorded = [n for n in _METHOD_OPTIONS if request.pairs == "future" or n not in _VIDEO_OPTIONS]
    method_options = {
        name: parameter.default for name, parameter in accepted.items() if name in recorded
    } | method_given
    optimizer = request.optimizer or defaults.optimizer
    if optimizer not in OPTIMIZERS:
        raise usage_error(
            f"unknown optimizer {optimizer!r}", f"choose one of {', '.join(OPTIMIZERS)}"
        )
    lr_per_256 = defaults.lr_per_256 if request.lr_per_256 is None else request.lr_per_256
    weight_decay = defaults.weight_decay if request.weight_decay is None else request.weight_decay
    final_weight_decay = request.final_weight_decay
    if final_weight_decay is None:
        final_weight_decay = defaults.final_weight_decay
    if final_weight_decay is not None and final_weight_decay < 0:
        raise usage_error(f"--final-weight-decay must be 0 or more, got {final_weight_decay}")
    batch = request.batch_size
    if batch == AUTO_BATCH:
        if request.pairs == "future":
            raise usage_error(
                "--batch-size auto measures image views; video pairs need a number",
                "give --batch-size, e.g. --batch-size 64",
            )
    elif batch < 2 or batch % world_size:
        raise usage_error(
            f"--batch-size {batch} must be at least 2 and divisible by the {world_size} processes",
            "--batch-size is the global batch over all processes",
        )
    for flag, value, least in (
        ("--epochs", request.epochs, 1),
        ("--knn-every", request.knn_every, 1),
        ("--checkpoint-every", request.checkpoint_every, 0),
        ("--size", request.size, 8),
        ("--store-size", request.store_size or 1, 1),
    ):
        if value < least:
            raise usage_error(f"{flag} must be {least} or more, got {value}")
    warmup = default_warmup(request.epochs, defaults)
    if request.warmup_epochs is not None:
        warmup = request.warmup_epochs
    small = request.small_images
    return TrainingConfig(
        data=request.data,
        method=request.method,
        backbone=request.backbone,
        size=request.size,
        store_size=store_size,
        small_images=request.size <= 64 if small is None else small,
        preset=preset_name,
        epochs=request.epochs,
        batch_size=batch,
        optimizer=optimizer,
        lr_per_256=lr_per_256,
        lr=0.0 if batch == AUTO_BATCH else scaled_lr(lr_per_256, batch),
        weight_decay=weight_decay,
        warmup_epochs=warmup,
        method_options=method_options,
        view_changes=request.view_changes,
        seed=request.seed,
        precision=request.precision,
        world_size=world_size,
        knn_every=request.knn_every,
        eval_dir=request.eval_dir,
        cache_dir=request.cache_dir or str(default_cache_dir()),
        strict=request.strict,
        checkpoint_every=request.checkpoint_every,
        stop_on_collapse=request.stop_on_collapse,
        online_probe=request.online_probe,
        init=request.init,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        streams=streams,
        shard_url=request.shard_url,
        patch_size=patch_size,
        drop_path=request.drop_path,
        local_crops=local_crops,
        local_size=local_size,
        final_weight_decay=final_weight_decay,
        compile=request.compile,
        time_budget=request.time_budget,
        steps=request.steps,
        tensorboard=request.tensorboard,
        pairs=request.pairs,
        fps=fps,
        horizon=horizon,
    )


def _holds_only_videos(root: Path) -> bool:
    """Whether ``root`` is a video file or a folder of videos and no images (views are then
    cut from the frames)."""
    from sslcli.data.images import holds_images
    from sslcli.data.video import holds_videos, is_video

    if root.is_file():
        return is_video(root)
    return root.is_dir() and not holds_images(root) and holds_videos(root)


def _video_pairs(request: TrainingRequest) -> tuple[float | None, float | None]:
    """(fps, horizon) of video pairs, checked: (fps, None) for views of a folder of videos'
    frames, (None, None) for image pairs."""
    from sslcli.data.clips import DEFAULT_FPS, DEFAULT_HORIZON, horizon_frames

    if request.pairs not in PAIRS:
        raise usage_error(f"unknown --pairs {request.pairs!r}", f"choose one of {', '.join(PAIRS)}")
    if request.pairs == "views":
        given = [flag for flag, value in (("--horizon", request.horizon),
                 ("--context-frames", request.method_options.get("context_frames")))
                 if value is not None]  # fmt: skip
        if given:
            raise usage_error(
                f"{', '.join(given)} apply to video pairs",
                "add --pairs future (DATA a folder of videos), or leave them out",
            )
        if request.fps is not None and not request.fps > 0:
            raise usage_error(f"--fps must be above 0, got {request.fps:g}")
        if not _holds_only_videos(Path(request.data)):
            if request.fps is not None:
                raise usage_error(
                    f"--fps samples the frames of videos, and {request.data} holds none alone",
                    "leave out --fps, or give a folder of videos",
                )
            return None, None
        return (DEFAULT_FPS if request.fps is None else request.fps), None
    if request.method != "latent":
        raise usage_error(
            "--pairs future trains the views objective of train-latent on videos",
            "leave out --objective masked",
        )
    if request.view_changes or "preset" in request.explicit or request.local_crops:
        raise usage_error(
            "--pairs future pairs whole frames: the augmentation options do not apply",
            "leave out --preset and the view options",
        )
    if request.online_probe:
        raise usage_error(
            "--online-probe needs labels, and videos have none",
            "leave out --online-probe (--eval-dir DIR of labelled images gives a kNN)",
        )
    fps = DEFAULT_FPS if request.fps is None else request.fps
    horizon = DEFAULT_HORIZON if request.horizon is None else request.horizon
    horizon_frames(horizon, fps)
    return fps, horizon
