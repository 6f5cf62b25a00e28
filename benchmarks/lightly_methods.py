"""lightly's implementation of each joint-embedding method beside sslcli's, one budget for all.

Setup (this benchmark's own step; lightly is not a dependency of sslcli):
    pip install --no-deps --target .bench/lightly lightly==1.6.0 lightning-utilities
Data: OpenCV digits as prepared by benchmarks/siamese_quality.py (run it once first, or pass
--work where it prepared them).

lightly's side is the loop its docs show for each method: a torch DataLoader over PIL images
with SimCLRTransform, the method's heads and loss from ``lightly.models``/``lightly.loss``, the
two views through the model one after the other (BYOL: momentum copies updated with lightly's
``update_momentum`` and ``cosine_schedule``). sslcli's side is ``sslcli train-siamese``. Both
use sslcli's tiny-cnn backbone, the same head widths, AdamW (lr 0.002 x batch/256, weight decay
1e-4, cosine decay, no warm-up), batch 256, 32 px, crops 0.4-1, brightness/contrast jitter 0.4
(p .8), blur p .5, no flip, no grayscale. Prints, per method, the kNN accuracy (k=200, T=0.1,
test against train features) each reaches and its training images/s. MoCo runs on sslcli's
side only (``--methods moco``): sslcli's is v3 (momentum encoder and predictor, no queue),
lightly ships only v2's queue.

Run: PYTHONPATH=.:.bench/lightly python -m benchmarks.lightly_methods --epochs 10

Before/after a change of sslcli, on sslcli's side only: ``git worktree add /tmp/before REV``,
then ``--implementations sslcli --sslcli-src /tmp/before`` trains with that tree's sslcli (the
kNN evaluation stays this tree's).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from benchmarks.siamese_quality import Digits
from sslcli.models.backbones import BackboneOptions, build_backbone

BATCH, SIZE, LR, WEIGHT_DECAY, WIDTH = 256, 32, 0.002, 1e-4, 1024
METHODS = {
    # method: sslcli options beyond the shared ones
    "simclr": ["--temperature", "0.2"],
    "vicreg": ["--projector-hidden-dim", str(WIDTH), "--projector-dim", str(WIDTH)],
    "barlow": ["--projector-hidden-dim", str(WIDTH), "--projector-dim", str(WIDTH)],
    "byol": ["--projector-hidden-dim", str(WIDTH), "--projector-dim", "256"],
    "simsiam": ["--projector-hidden-dim", str(WIDTH), "--projector-dim", str(WIDTH)],
    "moco": ["--projector-hidden-dim", str(WIDTH), "--projector-dim", "256"],
}
LIGHTLY_METHODS = ("simclr", "vicreg", "barlow", "byol", "simsiam")
Step = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""``step(x0, x1, progress)``: the method's loss on two view batches."""


def lightly_method(name: str, backbone: nn.Module) -> tuple[nn.Module, Step]:
    """The trainable module and loss step of lightly's example for ``name``."""
    from lightly import loss as losses
    from lightly.models.modules import heads
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.utils.scheduler import cosine_schedule

    dim = backbone.out_dim
    if name == "byol":
        projector = heads.BYOLProjectionHead(dim, WIDTH, 256)
        predictor = heads.BYOLPredictionHead(256, WIDTH, 256)
        online = nn.ModuleDict({"backbone": backbone, "projector": projector, "pred": predictor})
        target = nn.Sequential(copy.deepcopy(backbone), copy.deepcopy(projector))
        deactivate_requires_grad(target)
        criterion = losses.NegativeCosineSimilarity()

        def byol(x0: torch.Tensor, x1: torch.Tensor, progress: float) -> torch.Tensor:
            momentum = cosine_schedule(int(progress * 1_000_000), 1_000_000, 0.996, 1)
            update_momentum(nn.Sequential(backbone, projector), target, m=momentum)
            p0, p1 = (predictor(projector(backbone(x))) for x in (x0, x1))
            with torch.no_grad():
                t0, t1 = target(x0), target(x1)
            return 0.5 * (criterion(p0, t1) + criterion(p1, t0))

        return online, byol
    if name == "simsiam":
        projector = heads.SimSiamProjectionHead(dim, WIDTH, WIDTH)
        predictor = heads.SimSiamPredictionHead(WIDTH, 512, WIDTH)
        model = nn.ModuleDict({"backbone": backbone, "projector": projector, "pred": predictor})
        criterion = losses.NegativeCosineSimilarity()

        def simsiam(x0: torch.Tensor, x1: torch.Tensor, progress: float) -> torch.Tensor:
            z0, z1 = projector(backbone(x0)), projector(backbone(x1))
            p0, p1 = predictor(z0), predictor(z1)
            return 0.5 * (criterion(p0, z1.detach()) + criterion(p1, z0.detach()))

        return model, simsiam
    head, criterion = {
        "simclr": lambda: (heads.SimCLRProjectionHead(dim, 2048, 128), losses.NTXentLoss(0.2)),
        "vicreg": lambda: (heads.VICRegProjectionHead(dim, WIDTH, WIDTH), losses.VICRegLoss()),
        "barlow": lambda: (
            heads.BarlowTwinsProjectionHead(dim, WIDTH, WIDTH),
            losses.BarlowTwinsLoss(),
        ),
    }[name]()
    model = nn.Sequential(backbone, head)

    def pair(x0: torch.Tensor, x1: torch.Tensor, progress: float) -> torch.Tensor:
        return criterion(model(x0), model(x1))

    return model, pair


def lightly_run(name: str, train_dir: Path, epochs: int, seed: int) -> tuple[nn.Module, float]:
    from lightly.transforms import SimCLRTransform

    transform = SimCLRTransform(
        input_size=SIZE, cj_prob=0.8, cj_strength=0.5, cj_sat=0.0, cj_hue=0.0, min_scale=0.4,
        random_gray_scale=0.0, gaussian_blur=0.5, sigmas=(0.1, 2.0), vf_prob=0.0, hf_prob=0.0,
        rr_prob=0.0,
    )  # fmt: skip
    paths = sorted(train_dir.rglob("*.png"))
    images = [Image.open(p).convert("RGB").resize((SIZE, SIZE)) for p in paths]

    class Views(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, index: int) -> list[torch.Tensor]:
            return transform(images[index])

    loader = torch.utils.data.DataLoader(Views(), batch_size=BATCH, shuffle=True, drop_last=True)
    torch.manual_seed(seed)
    backbone = build_backbone("tiny-cnn", BackboneOptions())
    model, step_loss = lightly_method(name, backbone)
    lr = LR * BATCH / 256
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    total = epochs * len(loader)
    step, started = 0, time.perf_counter()
    for _ in range(epochs):
        for x0, x1 in loader:
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            loss = step_loss(x0, x1, step / total)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
    return backbone, step * BATCH / (time.perf_counter() - started)


def sslcli_run(
    name: str, train_dir: Path, work: Path, epochs: int, seed: int, source: Path | None
) -> tuple[nn.Module, float]:
    """Train with ``python -m sslcli``: this tree's, or the one in the folder ``source``."""
    run = work.resolve() / f"sslcli-{name}-{int(time.time())}"
    cache = work.resolve() / ("cache" if source is None else f"cache-{source.name}")
    command = [sys.executable, "-m", "sslcli", "train-siamese", str(train_dir.resolve())]
    command += ["--gpus", "0"]
    command += ["--method", name, "--backbone", "tiny-cnn", "--size", str(SIZE)]
    command += ["--batch-size", str(BATCH), "--epochs", str(epochs), "--optimizer", "adamw"]
    command += ["--lr", str(LR), "--weight-decay", str(WEIGHT_DECAY), "--warmup-epochs", "0"]
    command += ["--crop-scale", "0.4,1", "--jitter", "0.4,0.4,0,0", "--flip-prob", "0"]
    command += ["--grayscale-prob", "0", "--knn-every", "100000", "--out", str(run)]
    command += ["--cache-dir", str(cache), "--seed", str(seed), *METHODS[name]]
    env, cwd = None, None
    if source is not None:  # that tree first on the path, and not this tree's folder
        env = {**os.environ, "PYTHONPATH": str(source.resolve())}
        cwd = source.resolve()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=cwd)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # every logged window, the first included as lightly's figure includes its start:
    # equal windows of steps, so the harmonic mean is the images over the total step time
    speeds = [r["images_per_s"] for r in records if "images_per_s" in r]
    backbone = build_backbone("tiny-cnn", BackboneOptions())
    backbone.load_state_dict(load_file(run / "encoder" / "model.safetensors"))
    return backbone, len(speeds) / sum(1 / speed for speed in speeds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/sslcli-digits-bench"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="initialisation, order and views")
    parser.add_argument("--implementations", default="lightly,sslcli", help="comma-separated")
    parser.add_argument(
        "--sslcli-src", type=Path, help="train with the sslcli of this source tree (a worktree)"
    )
    args = parser.parse_args()
    digits = Digits.prepared_in(args.work)
    print(
        f"threads {torch.get_num_threads()}, {args.epochs} epochs, batch {BATCH}, {SIZE} px, "
        f"seed {args.seed}"
    )
    print("method   implementation   kNN     img/s", flush=True)
    for name in args.methods.split(","):
        for implementation in args.implementations.split(","):
            if implementation == "lightly":
                if name not in LIGHTLY_METHODS:
                    continue
                backbone, speed = lightly_run(name, digits.train_dir, args.epochs, args.seed)
            else:
                backbone, speed = sslcli_run(
                    name, digits.train_dir, args.work, args.epochs, args.seed, args.sslcli_src
                )
            accuracy = digits.knn(backbone)
            print(f"{name:8s} {implementation:16s} {accuracy:.3f}  {speed:6.1f}", flush=True)


if __name__ == "__main__":
    main()
