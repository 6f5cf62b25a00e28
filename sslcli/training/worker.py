"""The worker every process of a ``train-siamese``/``train-latent`` run executes: the data
decoded, the method and its observers built, the engine's loop run, the encoder exported."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sslcli.errors import SSLError, runtime_error, usage_error

if TYPE_CHECKING:
    from sslcli.augment.presets import Preset
    from sslcli.data.folder import ImageFolder
    from sslcli.data.store import StoredImages
    from sslcli.data.video import Frames
    from sslcli.engine.batch_probe import Fit
    from sslcli.engine.contract import Observer
    from sslcli.engine.runtime import Runtime
    from sslcli.engine.tensorboard import TensorBoardLog
    from sslcli.engine.trainer import Diverged
    from sslcli.methods.base import SSLMethod
    from sslcli.training.config import TrainingConfig
    from sslcli.training.futures import FuturePairs
    from sslcli.training.observers import LabelledImages
    from sslcli.training.views import ShardBatches, ViewBatches


def train_worker(
    runtime: Runtime,
    config: TrainingConfig,
    run_dir: Path,
    resume: Path | None,
    threads: int | None = None,
    deadline: float | None = None,
) -> None:
    """The worker every process runs (see ``engine.launch``), computing with ``threads``
    CPU threads (None: the process's default); a run with a time budget that has not
    planned its steps yet plans them to end by ``deadline`` (``time.time()``)."""

    from sslcli.augment.presets import PRESETS, customise
    from sslcli.engine.atomic import write_failure
    from sslcli.engine.budget import TimeBudget
    from sslcli.engine.optim import make_optimizer
    from sslcli.engine.runtime import set_threads
    from sslcli.engine.trainer import Diverged, Schedule, Trainer
    from sslcli.eval.online import OnlineProbe
    from sslcli.runs.layout import versioned, write_config, write_result
    from sslcli.training.config import AUTO_BATCH, RESUME_KEYS
    from sslcli.training.observers import (
        CollapseWatch,
        EpochEvaluation,
        HeldOutEnergy,
        MeasuresHeldOut,
        ProbeTraining,
    )

    used_threads = set_threads(threads)
    changes = {"size": config.size, **config.view_changes}
    local = {} if config.local_size is None else {"size": config.local_size}
    preset = customise(PRESETS.create(config.preset), changes, local)
    if config.batch_size == AUTO_BATCH:
        config = _with_measured_batch(config, runtime, preset, run_dir)
    data = _training_data(config, runtime)
    if not data.labelled and config.online_probe:
        raise usage_error(
            f"--online-probe needs labels: {config.data} has no class sub-folders",
            "put each class's images in a sub-folder of its own, or leave out --online-probe",
        )

    method, config = _built_method(config, data.count)
    backbone = method.backbone
    if config.init is not None and resume is None:
        _start_from_encoder(backbone, config.init)
    if config.compile:
        _check_compiler(runtime)
        backbone.compile()  # in place: the parameter names, and so the checkpoints, stay
    steps_per_epoch = data.steps_per_epoch
    schedule = Schedule(
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        warmup_steps=config.warmup_epochs * steps_per_epoch,
        base_lr=config.lr,
        global_batch=config.batch_size,
        checkpoint_every=config.checkpoint_every or steps_per_epoch,
        log_every=max(1, min(10, steps_per_epoch)),
        weight_decay=config.weight_decay,
        final_weight_decay=config.final_weight_decay,
        steps=config.steps,
    )
    batches = data.batches(preset)
    probe = None
    if data.labelled and config.online_probe:
        probe = OnlineProbe(
            backbone.out_dim, len(data.classes), batches.local_labels, runtime.device
        )
    observers: list[Observer] = [CollapseWatch(runtime.is_main, config.stop_on_collapse)]
    if probe is not None:
        observers.append(ProbeTraining(probe))
    training = data.evaluation
    evaluation = _evaluation_images(config, data.classes, runtime.is_main) or training
    if evaluation is not None:
        reference = training if evaluation is not training else None
        every = config.knn_every
        observers.append(EpochEvaluation(evaluation, reference, every, runtime, probe))
        if isinstance(method, MeasuresHeldOut):
            observers.append(HeldOutEnergy(evaluation, every, runtime))
    budget = None
    if config.time_budget is not None and config.steps is None and resume is None:
        budget = TimeBudget(
            deadline=deadline if deadline is not None else time.time() + config.time_budget,
            warmup_share=config.warmup_epochs / config.epochs,
            evaluation_every=config.knn_every if evaluation is not None else None,
        )
    trainer = Trainer(
        runtime,
        method,
        lambda model: make_optimizer(config.optimizer, model, config.lr, config.weight_decay),
        schedule,
        run_dir,
        versioned(config.as_dict() | {"images": data.fingerprint}),
        RESUME_KEYS,
        observers,
        budget,
    )
    if resume is not None:
        trainer.resume(resume)
    elif runtime.is_main:
        _write_views(batches, run_dir)
    board = None
    if config.tensorboard and runtime.is_main:
        board = _open_board(run_dir, None if resume is None else trainer.step)
        trainer.mirrors.append(board)
    try:
        result = trainer.fit(batches)
        if board is not None and evaluation is not None:
            _board_embeddings(board, trainer.module.backbone, evaluation, data.classes, runtime)
    except Diverged as error:
        raise _with_advice(error, config, run_dir) from error
    finally:
        if board is not None:
            board.close()
    if runtime.is_main:
        if budget is not None:  # the plan, for the user (checkpoints hold it for resuming)
            planned = trainer.schedule
            config = replace(config, steps=planned.total_steps, epochs=planned.epochs)
            write_config(run_dir, config.as_dict())
        record = {"step": result.step, "interrupted": result.interrupted, **result.last}
        record["threads"] = used_threads
        record["skipped"] = [failure.message for failure in data.failures]
        try:
            _export_encoder(trainer.module.backbone, config, run_dir)
            write_result(run_dir, record)
        except OSError as error:
            raise runtime_error(
                f"{write_failure(run_dir, error)}; the checkpoint of step {result.step} is kept",
                f"free space, then resume the run to write its encoder: --resume {run_dir}",
            ) from None


def _built_method(config: TrainingConfig, images: int) -> tuple[SSLMethod, TrainingConfig]:
    """The run's method around a new backbone, and the config with the method's options
    that depend on the data (``images`` of them) filled in; a distilling method with its
    teacher."""
    from sslcli.methods import METHODS
    from sslcli.models.backbones import backbone_options, build_backbone

    backbone = build_backbone(config.backbone, backbone_options(config.as_dict()))
    method_class = METHODS.create(config.method)
    options = method_class.options_for_data(config.method_options, images)
    teacher = None
    if method_class.takes_teacher:
        from sslcli.training.teacher import load_teacher

        teacher = load_teacher(options["teacher"], config.mean, config.std)
        options = options | {"teacher_dim": teacher.feature_dim()}
    config = replace(config, method_options=options)
    method = method_class(backbone, **config.method_options)
    if teacher is not None:
        method.teach_with(teacher)
    return method, config


PROBED_IMAGES = 10**6
"""The data size the batch probe builds a method for (DINO's prototypes at their most)."""


def _with_measured_batch(
    config: TrainingConfig, runtime: Runtime, preset: Preset, run_dir: Path
) -> TrainingConfig:
    """``--batch-size auto``: the config with the largest global batch whose training step
    fits on every rank's GPU (each rank measures its own; the smallest wins), and the
    learning rate scaled to it; the main process says so and records it."""
    import gc

    import torch

    from sslcli.engine.optim import scaled_lr
    from sslcli.runs.layout import write_config

    fit = _probed_fit(config, runtime, preset)
    gc.collect()  # the probe's model and optimiser are gone: their memory goes back
    torch.cuda.empty_cache()
    per_device = torch.tensor([fit.batch], device=runtime.device)
    if runtime.distributed:
        torch.distributed.all_reduce(per_device, op=torch.distributed.ReduceOp.MIN)
    batch = int(per_device.item()) * config.world_size
    config = replace(config, batch_size=batch, lr=scaled_lr(config.lr_per_256, batch))
    if runtime.is_main:
        _say(
            f"--batch-size auto: {batch} ({batch // config.world_size} per GPU; a batch of "
            f"{fit.batch} reserved {fit.peak_bytes / 2**30:.1f} of "
            f"{fit.total_bytes / 2**30:.1f} GiB at its peak; {fit.tried} sizes tried)"
        )
        write_config(run_dir, config.as_dict())
    return config


def _probed_fit(config: TrainingConfig, runtime: Runtime, preset: Preset) -> Fit:
    """The largest per-GPU batch of the run's training step on this rank's GPU, run on a
    model of its own and on random views of the run's view sizes."""
    from sslcli.data.shards import manifest_path
    from sslcli.engine.batch_probe import measure_largest_batch
    from sslcli.engine.contract import Clock
    from sslcli.engine.optim import make_optimizer
    from sslcli.training.views import view_recipes

    method, probed = _built_method(config, PROBED_IMAGES)
    method.to(runtime.device)
    optimizer = make_optimizer(probed.optimizer, method, probed.lr_per_256, probed.weight_decay)
    sizes = [recipe.size for recipe in view_recipes(preset, probed)]
    clock = Clock(step=0, total_steps=1000, steps_per_epoch=100)

    def step(batch: int) -> None:
        views = [torch.randn(batch, 3, size, size, device=runtime.device) for size in sizes]
        method.train()
        method.begin_step(clock)
        with runtime.autocast():
            loss = method(views).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # packed shards: whole streams per process in each batch
    streams = config.streams if manifest_path(Path(config.data)) is not None else 1
    granularity = math.lcm(8, max(1, streams // config.world_size))
    return measure_largest_batch(step, runtime.device, granularity)


@dataclass(frozen=True)
class _TrainingData:
    """What a run trains on, from an image folder (through the store) or packed shards."""

    classes: list[str]
    labelled: bool
    count: int
    """The number of training images."""
    steps_per_epoch: int
    batches: Callable[[Preset], ViewBatches | ShardBatches | FuturePairs]
    evaluation: LabelledImages | None
    """The training images at the training resolution, for the kNN evaluation (labelled
    folders; None for shards, which ``--eval-dir`` evaluates)."""
    fingerprint: str
    """The training set's size and content: the data order of a run depends on it."""
    failures: list[SSLError]


def _training_data(config: TrainingConfig, runtime: Runtime) -> _TrainingData:
    from sslcli.data.shards import manifest_path

    if config.pairs == "future":
        return _video_data(config, runtime)
    if config.fps is not None:  # a folder of videos alone (``resolve_config``)
        return _frame_data(config, runtime)
    manifest = manifest_path(Path(config.data))
    if manifest is not None:
        return _shard_data(manifest, config, runtime)
    return _folder_data(config, runtime)


def _decoded_videos(
    config: TrainingConfig, runtime: Runtime, fps: float, size: int, keep_aspect: bool
) -> tuple[list[Frames], list[SSLError]]:
    """The folder's videos, each decoded once (by the first process of each node, as the
    image store is built) at ``fps`` and ``size``, and the failures."""
    import torch.distributed as dist

    from sslcli.data.video import decoded_videos, scan_videos
    from sslcli.engine.progress import progress_bar

    paths = scan_videos(Path(config.data))
    builds = runtime.local_rank == 0
    if runtime.distributed and not builds:
        dist.barrier()
    with progress_bar("decode", len(paths), "video", runtime.is_main, transient=True) as bar:
        videos, _, failures = decoded_videos(
            paths, fps, size, Path(config.cache_dir), bar.advance, keep_aspect
        )
    if runtime.distributed and builds:
        dist.barrier()
    return videos, failures


def _video_data(config: TrainingConfig, runtime: Runtime) -> _TrainingData:
    """A folder of videos: every pair of past clip and future frame a sample."""
    from sslcli.data.clips import Continuation, horizon_frames
    from sslcli.training.futures import FuturePairs, continuation_samples

    assert config.fps is not None and config.horizon is not None, "resolve_config sets them"
    continuation = Continuation(
        config.method_options["context_frames"],
        horizon_frames(config.horizon, config.fps),
        config.fps,
    )
    videos, failures = _decoded_videos(config, runtime, config.fps, config.size, False)
    needed = continuation.frames_needed
    failures += [
        usage_error(continuation.too_short(str(video.path), len(video.pixels)))
        for video in videos
        if len(video.pixels) < needed
    ]
    videos = [video for video in videos if len(video.pixels) >= needed]
    return _sampled_videos(
        config,
        runtime,
        videos,
        failures,
        ("past-future pair(s)", "pairs", "add videos longer than the context and the horizon"),
        len(continuation_samples(videos, continuation)),
        lambda preset, steps: FuturePairs(videos, continuation, config, runtime, steps),
    )


def _frame_data(config: TrainingConfig, runtime: Runtime) -> _TrainingData:
    """A video file or a folder of videos trained on image views: every frame sampled at
    ``--fps`` is an image, kept at its video's aspect with the shorter side bounded by the
    store's resolution, and views are cut from it as from a stored image."""
    from sslcli.data.video import FrameImages
    from sslcli.training.views import ViewBatches

    assert config.fps is not None, "resolve_config sets it for a folder of videos"
    videos, failures = _decoded_videos(config, runtime, config.fps, config.store_size, True)
    frames = FrameImages(videos)
    return _sampled_videos(
        config,
        runtime,
        videos,
        failures,
        (f"frame(s) at {config.fps:g} fps", "frames", "add videos that decode"),
        len(frames),
        lambda preset, steps: ViewBatches(frames, config, preset, runtime, steps),
    )


def _sampled_videos(
    config: TrainingConfig,
    runtime: Runtime,
    videos: list[Frames],
    failures: list[SSLError],
    words: tuple[str, str, str],
    count: int,
    batches: Callable[[Preset, int], ViewBatches | FuturePairs],
) -> _TrainingData:
    """The training data of the usable ``videos``, ``count`` samples (``words``: what they
    are in the error, in the fingerprint, and the hint when there are none), each step's
    batches from ``batches(preset, steps_per_epoch)``; the failures listed, or raised with
    ``--strict``."""
    what, unit, none_hint = words
    if config.strict and failures:
        raise failures[0]
    if runtime.is_main and failures:
        _warn_skipped(failures, "video(s)")
    if count < config.batch_size:
        raise usage_error(
            f"{count} {what} in the {len(videos)} usable video(s) of {config.data}, fewer "
            f"than --batch-size {config.batch_size}",
            f"lower --batch-size to at most {count}, add videos, or raise --fps"
            if count
            else none_hint,
        )
    steps_per_epoch = count // config.batch_size
    names = [video.path for video in videos]
    return _TrainingData(
        classes=[],
        labelled=False,
        count=count,
        steps_per_epoch=steps_per_epoch,
        batches=lambda preset: batches(preset, steps_per_epoch),
        evaluation=None,
        fingerprint=f"{count} {unit} at {config.fps:g} fps, "
        + _fingerprint(names, list(range(len(names))), Path(config.data), "videos"),
        failures=failures,
    )


def _folder_data(config: TrainingConfig, runtime: Runtime) -> _TrainingData:
    import torch.distributed as dist

    from sslcli.data.folder import scan_image_folder
    from sslcli.training.views import ViewBatches

    folder = scan_image_folder(Path(config.data))
    # the first process of each node builds the store (and the kNN pixels) while the others
    # wait: nodes that do not share a file system build their own stores side by side
    builds = runtime.local_rank == 0
    if runtime.distributed and not builds:
        dist.barrier()
    showing = runtime.is_main
    stored, training = _training_images(folder, config, showing)
    if runtime.distributed and builds:
        dist.barrier()
    if showing and stored.failures:
        _warn_skipped(stored.failures)
    count = len(stored.kept)
    if count < config.batch_size:
        raise usage_error(
            f"{count} usable image(s) in {config.data}, "
            f"fewer than --batch-size {config.batch_size}",
            f"lower --batch-size to at most {count} or add images",
        )
    labels = None
    if folder.labels is not None:
        labels = torch.tensor([folder.labels[i] for i in stored.kept])
    steps_per_epoch = count // config.batch_size
    return _TrainingData(
        classes=folder.classes,
        labelled=labels is not None,
        count=count,
        steps_per_epoch=steps_per_epoch,
        batches=lambda preset: ViewBatches(
            stored, config, preset, runtime, steps_per_epoch, labels
        ),
        evaluation=training,
        fingerprint=_fingerprint(folder.paths, stored.kept, Path(config.data)),
        failures=stored.failures,
    )


def _shard_data(manifest_file: Path, config: TrainingConfig, runtime: Runtime) -> _TrainingData:
    """Packed shards: every process reads the manifest, and only its own streams' shards."""
    from sslcli.data.shards import ShardStreams, read_manifest
    from sslcli.training.views import ShardBatches

    manifest = read_manifest(manifest_file)
    streams = ShardStreams(manifest, config.streams, config.seed, config.shard_url)
    per_stream = config.batch_size // config.streams
    shortest = streams.shortest()
    steps_per_epoch = shortest // per_stream
    if steps_per_epoch == 0:
        most = shortest * config.streams
        raise usage_error(
            f"each of the {config.streams} shard streams of {config.data} holds at least "
            f"{shortest} sample(s), fewer than the {per_stream} a step takes from each at "
            f"--batch-size {config.batch_size}",
            f"lower --batch-size to at most {most}, or pack more images",
        )
    return _TrainingData(
        classes=manifest.classes,
        labelled=bool(manifest.classes),
        count=manifest.count,
        steps_per_epoch=steps_per_epoch,
        batches=lambda preset: ShardBatches(streams, config, preset, runtime, steps_per_epoch),
        evaluation=None,
        fingerprint=f"{manifest.fingerprint()}, {config.streams} streams, "
        f"windows of {streams.window} shards",
        failures=[],
    )


def _write_views(batches: ViewBatches | ShardBatches, run_dir: Path) -> None:
    """The first step's views in the run folder; a failed write costs the picture only."""
    from sslcli.runs.layout import VIEWS_FILE
    from sslcli.training.views import write_view_sheet

    try:
        write_view_sheet(batches, 0, run_dir / VIEWS_FILE)
    except OSError as error:
        from sslcli.engine.atomic import write_failure

        _warn(f"{write_failure(run_dir / VIEWS_FILE, error)}; training goes on without it")


def _open_board(run_dir: Path, resumed_at: int | None) -> TensorBoardLog:
    """The run's TensorBoard events, with the first step's views (when they were drawn)."""
    from sslcli.engine.tensorboard import TensorBoardLog
    from sslcli.runs.layout import VIEWS_FILE

    board = TensorBoardLog(run_dir, resumed_at)
    if resumed_at is None and (run_dir / VIEWS_FILE).is_file():
        board.image("views", run_dir / VIEWS_FILE)
    return board


PROJECTOR_IMAGES = 2000
"""At most this many evaluation images go to TensorBoard's projector (evenly spaced)."""


def _board_embeddings(
    board: TensorBoardLog,
    backbone: torch.nn.Module,
    evaluation: LabelledImages,
    classes: list[str],
    runtime: Runtime,
) -> None:
    """The trained backbone's features of the evaluation images, for the projector, each
    labelled with its class (its name, or its index where the training folder has none)."""
    import numpy as np

    from sslcli.eval.features import extract_features

    count = len(evaluation.labels)
    chosen = np.linspace(0, count - 1, min(count, PROJECTOR_IMAGES)).round().astype(int)
    pixels = np.asarray(evaluation.pixels[chosen])
    with torch.inference_mode():
        features = extract_features(backbone, pixels, runtime)  # as the kNN evaluation does
    indices = [int(evaluation.labels[i]) for i in chosen]
    labels = [classes[index] if classes else str(index) for index in indices]
    board.embeddings(features, labels, pixels, 0)


def _warn_skipped(failures: list[SSLError], what: str = "image(s)") -> None:
    listed = "\n".join(f"  {failure.message}" for failure in failures[:20])
    more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
    _warn(f"skipped {len(failures)} {what} that could not be used:\n{listed}{more}")


def _warn(message: str) -> None:
    _say(message, "warning:")


def _say(message: str, label: str = "note:") -> None:
    """``message`` on stderr (stdout may be the run's JSON), after a coloured ``label``."""
    from rich.console import Console

    console = Console(stderr=True)
    console.print(label, style="yellow" if label == "warning:" else "cyan", end=" ")
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _check_compiler(runtime: Runtime) -> None:
    """torch.compile on the CPU writes C++: refuse at once where no compiler is found."""
    import shutil

    if runtime.device.type == "cpu" and not any(map(shutil.which, ("c++", "g++", "clang++"))):
        raise usage_error(
            "--compile on the CPU needs a C++ compiler, and none is on PATH",
            "install one (g++), or leave out --compile",
        )


def _start_from_encoder(backbone: torch.nn.Module, init: str) -> None:
    """``--init``: the trained encoder's backbone weights (the run's checks chose the same
    architecture); the heads the method adds start afresh."""
    from sslcli.runs.loading import load_model

    backbone.load_state_dict(load_model(init).backbone.state_dict())


def _with_advice(error: Diverged, config: TrainingConfig, run_dir: Path) -> SSLError:
    """The divergence, with the command that continues (or restarts) the run."""
    from sslcli.training.config import LATENT_METHODS

    command = "train-latent" if config.method in LATENT_METHODS else "train-siamese"
    lower = f"--lr {config.lr_per_256 / 10:g}"
    fp32 = ", or --precision fp32" if config.precision != "fp32" else ""
    if error.last_good is None:
        advice = f"start again with a lower learning rate, e.g. {lower}{fp32}"
    else:
        advice = (
            f"continue from it with a lower learning rate: sslcli {command} --resume "
            f"{run_dir} {lower}{fp32}"
        )
    return runtime_error(error.message, f"{error.hint}; {advice}")


def _training_images(
    folder: ImageFolder, config: TrainingConfig, showing: bool
) -> tuple[StoredImages, LabelledImages | None]:
    """The training folder in the image store and, when it is labelled, its images at the
    training resolution for the kNN evaluation (both built by the first process to ask)."""
    from sslcli.data.cache import decode_once
    from sslcli.data.store import open_store
    from sslcli.engine.progress import progress_bar
    from sslcli.training.observers import LabelledImages

    cache_dir = Path(config.cache_dir)
    # transient: a store that has every image encodes nothing, and a bar left at 0 would mislead
    with progress_bar("store", len(folder.paths), "img", showing, transient=True) as bar:
        stored = open_store(folder.paths, config.store_size, cache_dir, config.strict, bar.advance)
    if folder.labels is None:
        return stored, None
    pixels = decode_once(
        folder.paths, config.size, cache_dir, config.strict, None, config.store_size
    )
    labels = torch.tensor([folder.labels[i] for i in pixels.kept])
    return stored, LabelledImages(pixels.pixels, labels)


def _evaluation_images(
    config: TrainingConfig, classes: list[str], decoding: bool
) -> LabelledImages | None:
    """``--eval-dir``'s images, labelled with the training folder's class indices when it has
    classes; decoded only where ``decoding`` (the main process evaluates), checked everywhere."""
    from sslcli.data.cache import decode_once
    from sslcli.data.folder import scan_image_folder
    from sslcli.engine.progress import progress_bar
    from sslcli.training.observers import LabelledImages

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
    with progress_bar("store eval", len(folder.paths), "img", True, transient=True) as bar:
        decoded = decode_once(
            folder.paths,
            config.size,
            Path(config.cache_dir),
            config.strict,
            bar.advance,
            config.store_size,
        )
    labels = [index[folder.classes[folder.labels[i]]] for i in decoded.kept]
    return LabelledImages(decoded.pixels, torch.tensor(labels))


def _fingerprint(paths: list[Path], kept: list[int], root: Path, what: str = "images") -> str:
    """The training files' count and names: the data order of a run depends on them."""
    names = "\n".join(paths[i].relative_to(root).as_posix() for i in kept)
    return f"{len(kept)} {what}, names {hashlib.sha256(names.encode()).hexdigest()[:16]}"


def _export_encoder(backbone: torch.nn.Module, config: TrainingConfig, run_dir: Path) -> None:
    from sslcli.runs.layout import export_encoder

    description = {
        "backbone": config.backbone,
        "small_images": config.small_images,
        "patch_size": config.patch_size,
        "drop_path": config.drop_path,
        "out_dim": backbone.out_dim,
        "image_size": config.size,
        "mean": config.mean,
        "std": config.std,
        "method": config.method,
    }
    export_encoder(run_dir, backbone, description)
