"""Training images/s of train-siamese / train-latent against the pure compute ceiling.

Both run the same Trainer, model, batch and precision; "ours" takes each step's two views from
the real data path (decode-once cache -> batched augmentation on the training device), the
ceiling feeds views already in memory on the device. Ratio = ours / ceiling.

For ``--method latent`` and ``masked-latent`` (train-latent) the script also times the
ceiling with ``z_steps`` 0 and prints the share of a training step that the inner z
optimisation costs:
1 - (images/s with the z steps) / (images/s without them).
``--repeats N`` measures every figure N times, in turn, and keeps the best of each.

Run: python benchmarks/siamese_speed.py --backbone tiny-cnn --size 32 --batch-size 128
     python benchmarks/siamese_speed.py --method dino --backbone vit-small --size 224
         --data PHOTOS --batch-size 64 [--device cuda --precision bf16]
     python benchmarks/siamese_speed.py --device cuda --backbone resnet50 --size 224
     python benchmarks/siamese_speed.py --method latent --backbone tiny-cnn --size 32
         [--target ema]
     python benchmarks/siamese_speed.py --method vicreg --projector-hidden-dim 1024
         --projector-dim 1024
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sslcli.augment.presets import PRESETS, customise
from sslcli.data.folder import scan_image_folder
from sslcli.data.store import open_store
from sslcli.engine.optim import make_optimizer
from sslcli.engine.runtime import make_runtime
from sslcli.engine.trainer import Schedule, Trainer
from sslcli.methods import METHODS
from sslcli.models.backbones import backbone_options, build_backbone
from sslcli.training.config import RESUME_KEYS, TrainingRequest, resolve_config
from sslcli.training.views import ViewBatches

DIGITS = Path(__file__).resolve().parent.parent / "sample_data" / "digits"


class _Timed:
    """Counts the steps after ``warmup`` and the time they took."""

    def __init__(self, source, warmup: int, device: torch.device) -> None:
        self.source, self.warmup, self.device = source, warmup, device
        self.calls, self.start = 0, 0.0

    def __call__(self, step: int) -> list[torch.Tensor]:
        if self.calls == self.warmup:
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.start = time.perf_counter()
        self.calls += 1
        return self.source(step)

    def images_per_second(self, batch: int) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return (self.calls - self.warmup - 1) * batch / (time.perf_counter() - self.start)


def run(args: argparse.Namespace, ceiling: bool, method_options: dict[str, int]) -> float:
    chosen = {
        "hidden_dim": args.projector_hidden_dim,
        "projection_dim": args.projector_dim,
        "target": args.target,
    }
    method_options = {**{k: v for k, v in chosen.items() if v is not None}, **method_options}
    runtime = make_runtime(args.device, args.precision, 0)
    request = TrainingRequest(
        data=str(args.data), method=args.method, backbone=args.backbone, size=args.size,
        small_images=None, preset=args.preset, view_changes={}, epochs=1,
        patch_size=args.patch_size, local_crops=args.local_crops,
        batch_size=args.batch_size, optimizer=None, lr_per_256=None, weight_decay=None,
        warmup_epochs=0, method_options=method_options, seed=0, precision=args.precision,
        knn_every=10**6, eval_dir=None, online_probe=False, checkpoint_every=10**9,
        stop_on_collapse=False, strict=False, cache_dir=str(args.cache_dir),
    )  # fmt: skip
    config = resolve_config(request, 1)
    stored = open_store(scan_image_folder(args.data).paths, config.store_size, args.cache_dir)
    steps_per_epoch = len(stored.kept) // args.batch_size
    epochs = -(-(args.steps + args.warmup + 1) // steps_per_epoch)
    schedule = Schedule(
        steps_per_epoch, epochs, 0, config.lr, args.batch_size, 10**9, 10**6,
        config.weight_decay, config.final_weight_decay,
    )  # fmt: skip
    method_class = METHODS.create(args.method)
    options = method_class.options_for_data(config.method_options, len(stored.kept))
    method = method_class(
        build_backbone(args.backbone, backbone_options(config.as_dict())), **options
    )
    if args.compile:
        method.backbone.compile()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(
            runtime,
            method,
            lambda model: make_optimizer(config.optimizer, model, config.lr, config.weight_decay),
            schedule,
            Path(run_dir),
            config.as_dict(),
            RESUME_KEYS,
        )
        local = {} if config.local_size is None else {"size": config.local_size}
        preset = customise(PRESETS.create(config.preset), {"size": args.size}, local)
        views = ViewBatches(stored, config, preset, runtime, steps_per_epoch)
        if ceiling:
            fixed = [view.clone() for view in views(0)]
            timed = _Timed(lambda step: fixed, args.warmup, runtime.device)
        else:
            timed = _Timed(views, args.warmup, runtime.device)
        trainer.fit(timed)
    return timed.images_per_second(args.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DIGITS)
    parser.add_argument("--method", default="simclr", choices=METHODS.names())
    parser.add_argument("--preset", choices=PRESETS.names(), help="[default: the method's]")
    parser.add_argument("--patch-size", type=int, help="ViTs [default: 16, 4 at <= 64 px]")
    parser.add_argument("--local-crops", type=int, help="dino, lejepa [default: 6]")
    parser.add_argument("--backbone", default="tiny-cnn")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--projector-hidden-dim", type=int, help="[default: the method's]")
    parser.add_argument("--projector-dim", type=int, help="[default: the method's]")
    parser.add_argument(
        "--target", choices=["online", "ema"], help="train-latent's target [default: online]"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--compile", action="store_true", help="both runs with the backbone compiled"
    )
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "sslcli-bench"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure each figure this many times, in turn, and keep the best of each (the "
        "first runs on a fresh GPU came out slow)",
    )
    args = parser.parse_args()
    latent = args.method in ("latent", "masked-latent")
    kinds = {"ceiling": (True, {}), "ours": (False, {})}
    if latent:
        kinds["without z"] = (True, {"z_steps": 0})
    best = dict.fromkeys(kinds, 0.0)
    for _ in range(args.repeats):
        for kind, (fixed, options) in kinds.items():
            best[kind] = max(best[kind], run(args, ceiling=fixed, method_options=options))
    ceiling, ours = best["ceiling"], best["ours"]
    method = f"latent, target {args.target or 'online'}" if args.method == "latent" else args.method
    print(
        f"{method} {args.backbone} {args.size}px batch {args.batch_size} on {args.device} "
        f"({args.precision}{', compiled' if args.compile else ''}): ceiling {ceiling:.1f} "
        f"img/s, ours {ours:.1f} img/s, "
        f"ratio {ours / ceiling:.2f}"
    )
    if latent:
        without_z = best["without z"]
        print(
            f"latent ceiling without the inner z steps {without_z:.1f} img/s: the z steps take "
            f"{1 - ceiling / without_z:.1%} of a training step"
        )


if __name__ == "__main__":
    main()
