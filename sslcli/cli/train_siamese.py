"""``sslcli train-siamese``: joint-embedding SSL on a folder of images."""

from __future__ import annotations

from typing import Annotated

import typer

from sslcli.cli.model_options import CacheDir, Precision, ShardThreads, Strict
from sslcli.cli.training import (
    AsJson,
    Backbone,
    BatchSize,
    CheckpointEvery,
    Compile,
    CpuProcs,
    Data,
    DropPath,
    Epochs,
    EvalDir,
    FinalWeightDecay,
    Fps,
    Gpus,
    Init,
    KnnEvery,
    LocalCrops,
    LocalSize,
    Lr,
    OnlineProbe,
    Optimizer,
    Out,
    PatchSize,
    PresetName,
    ProjectorDim,
    ProjectorHiddenDim,
    Resume,
    Seed,
    ShardUrl,
    Size,
    SmallImages,
    StopOnCollapse,
    StoreSize,
    Streams,
    TensorBoard,
    TimeBudgetOption,
    WarmupEpochs,
    WeightDecay,
    given,
    parse_batch_size,
    train_and_report,
    typed_on_command_line,
)
from sslcli.cli.view_options import (
    BlurProb,
    CropRatio,
    CropScale,
    FlipProb,
    GrayscaleProb,
    Jitter,
    JitterProb,
    Rotation,
    SolarizeProb,
    view_changes,
)
from sslcli.errors import usage_error


def train_siamese(
    ctx: typer.Context,
    data: Data = None,
    method: Annotated[str, typer.Option(help="SSL method (sslcli models lists them).")] = "simclr",
    backbone: Backbone = "resnet18",
    patch_size: PatchSize = None,
    drop_path: DropPath = 0.0,
    size: Size = 224,
    small_images: SmallImages = None,
    preset: PresetName = None,
    local_crops: LocalCrops = None,
    local_size: LocalSize = None,
    crop_scale: CropScale = None,
    crop_ratio: CropRatio = None,
    jitter: Jitter = None,
    jitter_prob: JitterProb = None,
    flip_prob: FlipProb = None,
    grayscale_prob: GrayscaleProb = None,
    blur_prob: BlurProb = None,
    solarize_prob: SolarizeProb = None,
    rotation: Rotation = None,
    epochs: Epochs = 100,
    time_budget: TimeBudgetOption = None,
    tensorboard: TensorBoard = False,
    batch_size: BatchSize = "256",
    optimizer: Optimizer = None,
    lr: Lr = None,
    weight_decay: WeightDecay = None,
    final_weight_decay: FinalWeightDecay = None,
    warmup_epochs: WarmupEpochs = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="NT-Xent temperature (simclr) \\[default: 0.1].", show_default=False),
    ] = None,
    projector_hidden_dim: ProjectorHiddenDim = None,
    projector_dim: ProjectorDim = None,
    prototypes: Annotated[
        int | None,
        typer.Option(
            help="dino, ibot: prototypes of the head's last layer \\[default: about one per 20 "
            "images as a power of 2, from 1024 to 65536].",
            show_default=False,
        ),
    ] = None,
    teacher_temp: Annotated[
        float | None,
        typer.Option(
            help="dino, ibot: teacher temperature after its warm-up from 0.04 \\[default: 0.07].",
            show_default=False,
        ),
    ] = None,
    teacher_momentum: Annotated[
        float | None,
        typer.Option(
            help="dino, ibot: the teacher's EMA momentum at the start, raised to 1 on a cosine "
            "\\[default: 0.996].",
            show_default=False,
        ),
    ] = None,
    mask_ratio: Annotated[
        float | None,
        typer.Option(
            help="ibot: the largest share of a global crop's patches masked; the masked "
            "shares spread from 0.1 to it \\[default: 0.5].",
            show_default=False,
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="distill: the frozen encoder to learn from: an sslcli run or encoder folder, "
            "or a transformers vision model folder.",
            show_default=False,
        ),
    ] = None,
    sigreg_weight: Annotated[
        float | None,
        typer.Option(
            help="lejepa: lambda, the weight of SIGReg against the predictive term "
            "\\[default: 0.05].",
            show_default=False,
        ),
    ] = None,
    fps: Fps = None,
    gpus: Gpus = None,
    cpu_procs: CpuProcs = 1,
    threads: ShardThreads = None,
    precision: Precision = "auto",
    compile: Compile = False,
    seed: Seed = 0,
    out: Out = None,
    resume: Resume = None,
    init: Init = None,
    knn_every: KnnEvery = 5,
    eval_dir: EvalDir = None,
    online_probe: OnlineProbe = False,
    checkpoint_every: CheckpointEvery = 0,
    cache_dir: CacheDir = None,
    store_size: StoreSize = None,
    streams: Streams = None,
    shard_url: ShardUrl = None,
    stop_on_collapse: StopOnCollapse = False,
    strict: Strict = False,
    as_json: AsJson = False,
) -> None:
    """Train a joint-embedding (siamese) encoder on a folder of images, or of videos (every
    frame sampled at --fps is an image that views are cut from)."""
    from sslcli.cli.train_latent import objective_flags
    from sslcli.engine.budget import parse_duration
    from sslcli.training.config import LATENT_METHODS, TrainingRequest

    if method in LATENT_METHODS:
        raise usage_error(
            "the latent-variable methods train with their own command",
            " ".join(["sslcli train-latent", str(data), *objective_flags(method)]),
        )
    from sslcli.training.run import Devices

    request = TrainingRequest(
        data=None if data is None else str(data),
        method=method,
        backbone=backbone,
        size=size,
        small_images=small_images,
        preset=preset,
        view_changes=view_changes(
            crop_scale,
            crop_ratio,
            jitter,
            jitter_prob,
            flip_prob,
            grayscale_prob,
            blur_prob,
            solarize_prob,
            rotation,
        ),
        epochs=epochs,
        time_budget=None if time_budget is None else parse_duration(time_budget),
        tensorboard=tensorboard,
        fps=fps,
        batch_size=parse_batch_size(batch_size),
        optimizer=optimizer,
        lr_per_256=lr,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        method_options=given(
            temperature=temperature,
            hidden_dim=projector_hidden_dim,
            projection_dim=projector_dim,
            prototypes=prototypes,
            teacher_temp=teacher_temp,
            sigreg_weight=sigreg_weight,
            mask_ratio=mask_ratio,
            teacher=teacher,
            teacher_momentum=teacher_momentum,
        ),
        seed=seed,
        precision=precision,
        knn_every=knn_every,
        eval_dir=None if eval_dir is None else str(eval_dir),
        online_probe=online_probe,
        checkpoint_every=checkpoint_every,
        stop_on_collapse=stop_on_collapse,
        strict=strict,
        cache_dir=None if cache_dir is None else str(cache_dir),
        store_size=store_size,
        init=None if init is None else str(init),
        streams=streams,
        shard_url=shard_url,
        patch_size=patch_size,
        drop_path=drop_path,
        compile=compile,
        local_crops=local_crops,
        local_size=local_size,
        final_weight_decay=final_weight_decay,
        explicit=typed_on_command_line(ctx, {"lr": "lr_per_256"}),
    )
    train_and_report(
        "train-siamese", request, Devices(gpus, cpu_procs, threads), out, resume, as_json
    )


def register(app: typer.Typer) -> None:
    app.command("train-siamese")(train_siamese)
