"""Joint-embedding (siamese) training on a folder of images: settings, data, the run.

Data: every image is decoded once into a uint8 cache at the training resolution; each step
takes the global batch's images from it, draws two views on the training device with the
``augment`` ops and hands them to the method. The global batch at a step, and every view's
random parameters, depend only on the seed, the epoch and the image, so 2 processes x B
see exactly what 1 process x 2B sees, and a resumed run what an uninterrupted one saw.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sslcli.errors import usage_error

if TYPE_CHECKING:
    import numpy as np

    from sslcli.augment.presets import Preset
    from sslcli.engine.runtime import Runtime
    from sslcli.eval.online import LabelledImages


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be above 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _fraction(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"


def _regulariser(value: Any) -> str | None:
    return None if value in ("l2", "l1") else "must be l2 or l1"


def _latent_target(value: Any) -> str | None:
    return None if value in ("online", "ema") else "must be online or ema"


_METHOD_OPTIONS = {
    "temperature": ("--temperature", _positive),
    "hidden_dim": ("--projector-hidden-dim", _positive),
    "projection_dim": ("--projector-dim", _positive),
    "latent_dim": ("--latent-dim", _positive),
    "z_steps": ("--z-steps", _non_negative),
    "z_lr": ("--z-lr", _positive),
    "z_reg": ("--z-reg", _regulariser),
    "z_weight": ("--z-weight", _non_negative),
    "z_dropout": ("--z-dropout", _fraction),
    "target": ("--target", _latent_target),
}
ENCODER_FOLDER = "encoder"
RESULT_FILE = "result.json"
RESUME_KEYS = (
    "method",
    "backbone",
    "small_images",
    "size",
    "preset",
    "view_changes",
    "batch_size",
    "seed",
    "epochs",
    "optimizer",
    "lr_per_256",
    "weight_decay",
    "warmup_epochs",
    "method_options",
    "precision",
    "images",
)
"""Settings a resumed run must share with its checkpoint: they shape the model, the optimiser
state, the schedule or the data (``images`` fingerprints the decoded image set)."""


@dataclass(frozen=True)
class SiameseConfig:
    data: str
    method: str = "simclr"
    backbone: str = "resnet18"
    size: int = 224
    small_images: bool = False
    preset: str = "simclr"
    epochs: int = 100
    batch_size: int = 256
    """The GLOBAL batch: summed over every process of the run."""
    optimizer: str = "lars"
    lr_per_256: float = 0.3
    lr: float = 0.3
    """The learning rate used: lr_per_256 x batch_size / 256."""
    weight_decay: float = 1e-6
    warmup_epochs: int = 10
    method_options: dict[str, Any] = field(default_factory=dict)
    view_changes: dict[str, Any] = field(default_factory=dict)
    """Augmentation fields set on the command line, over the preset's."""
    seed: int = 0
    precision: str = "auto"
    world_size: int = 1
    knn_every: int = 5
    eval_dir: str | None = None
    cache_dir: str = ""
    strict: bool = False
    checkpoint_every: int = 0
    """Steps between checkpoints; 0 = once per epoch."""
    stop_on_collapse: bool = False
    online_probe: bool = False
    """Train a linear classifier on the detached features as training goes (labelled data)."""

    @property
    def per_device_batch(self) -> int:
        return self.batch_size // self.world_size

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (tuples as lists), as saved in config.json and checkpoints."""
        return json.loads(json.dumps(asdict(self)))


def resolve_config(world_size: int, **options: Any) -> SiameseConfig:
    """Fill method defaults, scale the learning rate to the global batch, validate."""
    from sslcli.augment.presets import PRESETS
    from sslcli.engine.optim import OPTIMIZERS, scaled_lr
    from sslcli.methods import METHODS
    from sslcli.models.backbones import BACKBONES

    BACKBONES.get(options["backbone"])
    PRESETS.get(options["preset"])
    method = METHODS.create(options["method"])
    defaults = method.defaults
    accepted = inspect.signature(method.__init__).parameters
    for name, value in options["method_options"].items():
        flag, check = _METHOD_OPTIONS[name]
        if name not in accepted:
            raise usage_error(f"{flag} does not apply to {options['method']}")
        problem = check(value)
        if problem:
            raise usage_error(f"{flag} {problem}, got {value}")
    # every option the method takes is recorded, defaults too: a run keeps its settings when
    # a later version changes a default (energy, resume and eval rebuild it from them)
    options["method_options"] = {
        name: parameter.default for name, parameter in accepted.items() if name in _METHOD_OPTIONS
    } | options["method_options"]
    optimizer = options.pop("optimizer") or defaults.optimizer
    if optimizer not in OPTIMIZERS:
        raise usage_error(
            f"unknown optimizer {optimizer!r}", f"choose one of {', '.join(OPTIMIZERS)}"
        )
    lr_per_256 = options.pop("lr_per_256")
    lr_per_256 = defaults.lr_per_256 if lr_per_256 is None else lr_per_256
    weight_decay = options.pop("weight_decay")
    weight_decay = defaults.weight_decay if weight_decay is None else weight_decay
    batch = options["batch_size"]
    if batch < 2 or batch % world_size:
        raise usage_error(
            f"--batch-size {batch} must be at least 2 and divisible by the {world_size} processes",
            "--batch-size is the global batch over all processes",
        )
    for name, least in (("epochs", 1), ("knn_every", 1), ("checkpoint_every", 0), ("size", 8)):
        if options[name] < least:
            flag = "--" + name.replace("_", "-")
            raise usage_error(f"{flag} must be {least} or more, got {options[name]}")
    warmup = options.pop("warmup_epochs")
    warmup = min(10, options["epochs"] // 10) if warmup is None else warmup
    small = options.pop("small_images")
    small = options["size"] <= 64 if small is None else small
    return SiameseConfig(
        optimizer=optimizer,
        lr_per_256=lr_per_256,
        lr=scaled_lr(lr_per_256, batch),
        weight_decay=weight_decay,
        warmup_epochs=warmup,
        small_images=small,
        world_size=world_size,
        **options,
    )


def train_siamese(
    runtime: Runtime, config: SiameseConfig, run_dir: Path, resume: Path | None
) -> None:
    """The worker every process runs (see ``engine.launch``)."""
    import torch.distributed as dist

    from sslcli.augment.presets import PRESETS, customise
    from sslcli.data.cache import decode_once
    from sslcli.data.folder import scan_image_folder
    from sslcli.engine.atomic import write_text_atomic
    from sslcli.engine.optim import make_optimizer
    from sslcli.engine.progress import progress_bar
    from sslcli.engine.trainer import Schedule, Trainer
    from sslcli.eval.online import EpochEvaluation, LabelledImages, OnlineProbe
    from sslcli.methods import METHODS
    from sslcli.models.backbones import BACKBONES

    folder = scan_image_folder(Path(config.data))
    if runtime.distributed and not runtime.is_main:
        dist.barrier()  # let rank 0 build the cache first
    # transient: a cache hit decodes nothing, and a bar left at 0 would mislead
    showing = runtime.is_main
    with progress_bar("decode", len(folder.paths), "img", showing, transient=True) as bar:
        decoded = decode_once(
            folder.paths, config.size, Path(config.cache_dir), config.strict, bar.advance
        )
    if runtime.distributed and runtime.is_main:
        dist.barrier()
    count = len(decoded.kept)
    if count < config.batch_size:
        raise usage_error(
            f"{count} usable image(s) in {config.data}, "
            f"fewer than --batch-size {config.batch_size}",
            f"lower --batch-size to at most {count} or add images",
        )
    labels = None
    if folder.labels is not None:
        labels = torch.tensor([folder.labels[i] for i in decoded.kept])
    elif config.online_probe:
        raise usage_error(
            f"--online-probe needs labels: {config.data} has no class sub-folders",
            "put each class's images in a sub-folder of its own, or leave out --online-probe",
        )

    backbone = BACKBONES.create(config.backbone, small_images=config.small_images)
    method = METHODS.create(config.method)(backbone, **config.method_options)
    steps_per_epoch = count // config.batch_size
    schedule = Schedule(
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        warmup_steps=config.warmup_epochs * steps_per_epoch,
        base_lr=config.lr,
        global_batch=config.batch_size,
        checkpoint_every=config.checkpoint_every or steps_per_epoch,
        log_every=max(1, min(10, steps_per_epoch)),
    )
    changes = {"size": config.size, **config.view_changes}
    preset = customise(PRESETS.create(config.preset), changes, {})
    batches = _ViewBatches(decoded.pixels, config, preset, runtime, steps_per_epoch)
    probe = None
    if labels is not None and config.online_probe:
        probe = OnlineProbe(
            backbone.out_dim,
            len(folder.classes),
            lambda step: labels[batches.local_indices(step)],
            runtime.device,
        )
    trainer = Trainer(
        runtime,
        method,
        lambda model: make_optimizer(config.optimizer, model, config.lr, config.weight_decay),
        schedule,
        run_dir,
        config.as_dict() | {"images": _fingerprint(folder.paths, decoded.kept, Path(config.data))},
        RESUME_KEYS,
        stop_on_collapse=config.stop_on_collapse,
        probe=probe,
    )
    if resume is not None:
        trainer.resume(resume)

    training = LabelledImages(decoded.pixels, labels) if labels is not None else None
    evaluation = _evaluation_images(config, folder.classes, showing) or training
    evaluate = None
    if evaluation is not None:
        reference = training if evaluation is not training else None
        every = config.knn_every
        evaluate = EpochEvaluation(evaluation, reference, every, config.epochs, runtime, probe)
    result = trainer.fit(batches, evaluate)
    if runtime.is_main:
        _export_encoder(trainer.method.backbone, config, run_dir)
        record = {"step": result.step, "interrupted": result.interrupted, **result.last}
        write_text_atomic(run_dir / RESULT_FILE, json.dumps(record, indent=2))


class _ViewBatches:
    """This rank's two views of the global batch at a step."""

    def __init__(
        self,
        pixels: np.ndarray,
        config: SiameseConfig,
        preset: Preset,
        runtime: Runtime,
        steps_per_epoch: int,
    ) -> None:
        self.pixels = pixels
        self.config = config
        self.recipes = [preset.recipe(0), preset.recipe(1)]
        self.runtime = runtime
        self.steps_per_epoch = steps_per_epoch
        self._order: tuple[int, torch.Tensor] | None = None
        """The data order of the latest epoch asked for: computed once per epoch, not per step."""

    def local_indices(self, step: int) -> torch.Tensor:
        """The images (indices into the cache) of this rank's share of the step's batch."""
        config, rank = self.config, self.runtime.rank
        epoch, within = divmod(step, self.steps_per_epoch)
        cached = self._order  # one read: the prefetch thread may replace it meanwhile
        if cached is None or cached[0] != epoch:
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            cached = (epoch, torch.randperm(len(self.pixels), generator=generator))
            self._order = cached
        batch = cached[1][within * config.batch_size : (within + 1) * config.batch_size]
        return batch[rank * config.per_device_batch : (rank + 1) * config.per_device_batch]

    def __call__(self, step: int) -> list[torch.Tensor]:
        from sslcli.augment.ops import normalize
        from sslcli.augment.views import apply_views, sample_view

        config, runtime = self.config, self.runtime
        epoch = step // self.steps_per_epoch
        count = len(self.pixels)
        local = self.local_indices(step)
        images = torch.from_numpy(self.pixels[local.numpy()]).to(runtime.device, non_blocking=True)
        images = images.permute(0, 3, 1, 2).float().div_(255)
        ids = local + epoch * count
        side = torch.full_like(ids, self.pixels.shape[1])
        drawn = [
            (sample_view(recipe, ids, side, side, config.seed, k), recipe)
            for k, recipe in enumerate(self.recipes)
        ]
        return [normalize(view) for view in apply_views(images, drawn)]


def _evaluation_images(
    config: SiameseConfig, classes: list[str], decoding: bool
) -> LabelledImages | None:
    """``--eval-dir``'s images, labelled with the training folder's class indices when it has
    classes; decoded only where ``decoding`` (the main process evaluates), checked everywhere."""
    from sslcli.data.cache import decode_once
    from sslcli.data.folder import scan_image_folder
    from sslcli.engine.progress import progress_bar
    from sslcli.eval.online import LabelledImages

    if config.eval_dir is None:
        return None
    folder = scan_image_folder(Path(config.eval_dir))
    if folder.labels is None:
        raise usage_error(
            f"--eval-dir {config.eval_dir} has no class sub-folders",
            "give a folder with one sub-folder of images per class",
        )
    unknown = sorted(set(folder.classes) - set(classes))
    if classes and unknown:
        raise usage_error(
            f"--eval-dir has classes the training folder lacks: {', '.join(unknown[:5])}",
            "use the same class sub-folder names in both",
        )
    index = {name: i for i, name in enumerate(classes or folder.classes)}
    if not decoding:
        return None
    with progress_bar("decode eval", len(folder.paths), "img", True, transient=True) as bar:
        decoded = decode_once(
            folder.paths, config.size, Path(config.cache_dir), config.strict, bar.advance
        )
    labels = [index[folder.classes[folder.labels[i]]] for i in decoded.kept]
    return LabelledImages(decoded.pixels, torch.tensor(labels))


def _fingerprint(paths: list[Path], kept: list[int], root: Path) -> str:
    """The training images' count and names: the data order of a run depends on them."""
    names = "\n".join(paths[i].relative_to(root).as_posix() for i in kept)
    return f"{len(kept)} images, names {hashlib.sha256(names.encode()).hexdigest()[:16]}"


def _export_encoder(backbone: torch.nn.Module, config: SiameseConfig, run_dir: Path) -> None:
    """``encoder/``: the backbone alone, a checkpoint folder without trainer state, loadable
    without sslcli (see README)."""
    from sslcli.augment.ops import IMAGENET_MEAN, IMAGENET_STD
    from sslcli.engine.checkpoint import save_checkpoint

    description = {
        "backbone": config.backbone,
        "small_images": config.small_images,
        "out_dim": backbone.out_dim,
        "image_size": config.size,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "method": config.method,
    }
    save_checkpoint(run_dir / ENCODER_FOLDER, backbone.state_dict(), description)
