"""``sslcli train-latent``: the latent-variable predictive architecture on a folder of images,
or (``--pairs future``) on a folder of videos."""

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
    Fps,
    Gpus,
    Init,
    KnnEvery,
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

OBJECTIVES = {
    ("views", "latent"): "latent",
    ("masked", "latent"): "masked-latent",
    ("masked", "pixels"): "mae",
}
"""``--objective`` and ``--predict``: the method each pair trains."""


def objective_flags(method: str) -> list[str]:
    """The options of ``train-latent`` that train ``method`` (none for the default)."""
    objective, predict = next(pair for pair, name in OBJECTIVES.items() if name == method)
    flags = [] if objective == "views" else ["--objective", objective]
    return flags + ([] if predict == "latent" else ["--predict", predict])


def method_of(objective: str, predict: str) -> str:
    """The method ``--objective`` and ``--predict`` ask for, or a usage error."""
    objectives = sorted({name for name, _ in OBJECTIVES})
    if objective not in objectives:
        raise usage_error(
            f"unknown --objective {objective!r}", f"choose one of {', '.join(objectives)}"
        )
    predicts = sorted({name for _, name in OBJECTIVES})
    if predict not in predicts:
        raise usage_error(f"unknown --predict {predict!r}", f"choose one of {', '.join(predicts)}")
    if (objective, predict) not in OBJECTIVES:
        raise usage_error(
            f"--predict {predict} reconstructs hidden patches, which --objective {objective} "
            "does not hide",
            f"give --objective masked --predict {predict}",
        )
    return OBJECTIVES[objective, predict]


def train_latent(
    ctx: typer.Context,
    data: Data = None,
    backbone: Backbone = "resnet18",
    patch_size: PatchSize = None,
    drop_path: DropPath = 0.0,
    size: Size = 224,
    small_images: SmallImages = None,
    preset: PresetName = None,
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
    warmup_epochs: WarmupEpochs = None,
    projector_hidden_dim: ProjectorHiddenDim = None,
    projector_dim: ProjectorDim = None,
    objective: Annotated[
        str,
        typer.Option(
            help="views: predict one augmented view's embedding from another's; masked: "
            "hide blocks of a ViT's patches and predict their representations from the "
            "visible ones (I-JEPA's masking, with z)."
        ),
    ] = "views",
    predict: Annotated[
        str,
        typer.Option(
            help="--objective masked: latent (the hidden patches' representations, with z) "
            "or pixels (their normalised pixels, a masked autoencoder, MAE: the baseline)."
        ),
    ] = "latent",
    mask_ratio: Annotated[
        float | None,
        typer.Option(
            help="--predict pixels: the share of patches hidden at random \\[default: 0.75].",
            show_default=False,
        ),
    ] = None,
    latent_dim: Annotated[
        int | None,
        typer.Option(help="Dimensions of z; 0: no z \\[default: 16].", show_default=False),
    ] = None,
    z_steps: Annotated[
        int | None,
        typer.Option(
            help="Gradient steps inferring z per sample \\[default: 5].", show_default=False
        ),
    ] = None,
    z_lr: Annotated[
        float | None,
        typer.Option(
            help="Step size of those steps \\[default: 10; 0.1 with --objective masked].",
            show_default=False,
        ),
    ] = None,
    z_reg: Annotated[
        str | None,
        typer.Option(
            help="Regulariser R(z): l2 (||z||^2/2) or l1 \\[default: l2].", show_default=False
        ),
    ] = None,
    z_weight: Annotated[
        float | None,
        typer.Option(
            help="Weight lambda of R(z) in F = min_z E + lambda R(z) \\[default: 0.1].",
            show_default=False,
        ),
    ] = None,
    z_dropout: Annotated[
        float | None,
        typer.Option(
            help="Share of predictions made with z = 0, so x must carry them \\[default: 0.5].",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="What the predictor guesses: online (the other view's embedding, with"
            " gradient) or ema (LayerNorm of a momentum copy's embedding) \\[default: online].",
            show_default=False,
        ),
    ] = None,
    pairs: Annotated[
        str,
        typer.Option(
            help="views: two augmented views of an image (of a frame, when DATA holds "
            "videos); future: DATA holds videos, x is a clip ending at t and y the frame at "
            "t + --horizon."
        ),
    ] = "views",
    horizon: Annotated[
        str | None,
        typer.Option(
            help="--pairs future: how far ahead y is, a multiple of 1/fps \\[default: 0.5s].",
            show_default=False,
        ),
    ] = None,
    fps: Fps = None,
    context_frames: Annotated[
        int | None,
        typer.Option(
            help="--pairs future: frames of x, each embedded, concatenated in time order and "
            "mixed by a linear layer \\[default: 2].",
            show_default=False,
        ),
    ] = None,
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
    """Train a latent-variable predictive model (no contrastive samples) on a folder of images,
    or of videos (--pairs future: the past predicts the future).

    The predictor guesses one view's target embedding from the other view's embedding and a
    latent z: by default (--target online) the target is the same network's embedding of that
    view, with gradient; --target ema takes a momentum copy's instead. z is inferred per
    sample by gradient steps on the energy and regularised. The embeddings come from an
    expander 2048-2048-256 on the backbone (--projector-hidden-dim, --projector-dim). The run
    folder is like train-siamese's; energy, embed, eval and sweep use it. On videos the
    frames are sampled at --fps: --pairs future resizes each whole frame to --size (not
    augmented), --pairs views cuts two views from each frame as from an image.
    --objective masked hides blocks of a ViT's patches and predicts their representations
    instead; with --predict pixels, a masked autoencoder reconstructs their pixels (MAE, the
    baseline, no z).
    """
    from sslcli.engine.budget import parse_duration
    from sslcli.training.config import TrainingRequest
    from sslcli.training.run import Devices

    method = method_of(objective, predict)
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
        batch_size=parse_batch_size(batch_size),
        optimizer=optimizer,
        lr_per_256=lr,
        weight_decay=weight_decay,
        warmup_epochs=warmup_epochs,
        method_options=given(
            hidden_dim=projector_hidden_dim,
            projection_dim=projector_dim,
            latent_dim=latent_dim,
            z_steps=z_steps,
            z_lr=z_lr,
            z_reg=z_reg,
            z_weight=z_weight,
            z_dropout=z_dropout,
            target=target,
            context_frames=context_frames,
            mask_ratio=mask_ratio,
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
        pairs=pairs,
        fps=fps,
        horizon=None if horizon is None else parse_duration(horizon, "--horizon", "0.5s or 2s"),
        explicit=typed_on_command_line(ctx, {"lr": "lr_per_256"}),
    )
    train_and_report(
        "train-latent", request, Devices(gpus, cpu_procs, threads), out, resume, as_json
    )


def register(app: typer.Typer) -> None:
    app.command("train-latent")(train_latent)
