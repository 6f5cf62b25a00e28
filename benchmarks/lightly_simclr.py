"""lightly's SimCLR beside sslcli's: same data, backbone, batch, augmentation, optimiser, steps.

Setup (this benchmark's own step; lightly is not a dependency of sslcli):
    pip install --no-deps --target .bench/lightly lightly==1.6.0 lightning-utilities
Data: OpenCV digits as prepared by benchmarks/siamese_quality.py (run it once first, or pass
--work where it prepared them).

lightly's side is the loop its docs show: a torch DataLoader over PIL images with
SimCLRTransform, SimCLRProjectionHead, NTXentLoss. Both use sslcli's tiny-cnn backbone, SGD
(momentum 0.9), cosine decay, temperature 0.2, batch 256, 32 px, crops 0.4-1, jitter
0.4/0.4/0.4/0.1 (p .8), blur p .5, no flip, no grayscale. Prints images/s of each (same
threads, no evaluation inside) and, with --epochs, the kNN accuracy each reaches.

Run: PYTHONPATH=.:.bench/lightly python -m benchmarks.lightly_simclr --epochs 30
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.siamese_quality import Digits
from sslcli.models.backbones import BACKBONES

BATCH, SIZE, TEMPERATURE, LR, EPOCHS_DEFAULT = 256, 32, 0.2, 0.5, 30


def lightly_run(train_dir: Path, epochs: int) -> tuple[torch.nn.Module, float]:
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    transform = SimCLRTransform(
        input_size=SIZE, cj_prob=0.8, cj_strength=0.5, min_scale=0.4, random_gray_scale=0.0,
        gaussian_blur=0.5, sigmas=(0.1, 2.0), vf_prob=0.0, hf_prob=0.0,
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
    torch.manual_seed(0)
    backbone = BACKBONES.create("tiny-cnn")
    head = SimCLRProjectionHead(backbone.out_dim, 2048, 128)
    model = torch.nn.Sequential(backbone, head)
    criterion = NTXentLoss(temperature=TEMPERATURE)
    lr = LR * BATCH / 256
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-6)
    total = epochs * len(loader)
    step, seen, started = 0, 0, time.perf_counter()
    for _ in range(epochs):
        for x0, x1 in loader:
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            loss = criterion(model(x0), model(x1))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            seen += BATCH
    return backbone, seen / (time.perf_counter() - started)


def sslcli_run(train_dir: Path, work: Path, epochs: int) -> tuple[torch.nn.Module, float]:
    run = work / f"sslcli-{int(time.time())}"
    command = [sys.executable, "-m", "sslcli", "train-siamese", str(train_dir), "--gpus", "0"]
    command += ["--backbone", "tiny-cnn", "--size", str(SIZE), "--batch-size", str(BATCH)]
    command += [
        "--epochs",
        str(epochs),
        "--optimizer",
        "sgd",
        "--lr",
        str(LR),
        "--warmup-epochs",
        "0",
    ]
    command += [
        "--weight-decay",
        "1e-6",
        "--temperature",
        str(TEMPERATURE),
        "--crop-scale",
        "0.4,1",
    ]
    command += ["--jitter", "0.4,0.4,0.4,0.1", "--flip-prob", "0", "--grayscale-prob", "0"]
    command += ["--knn-every", "100000", "--out", str(run), "--cache-dir", str(work / "cache")]
    subprocess.run(command, check=True, capture_output=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_s"] for r in records if "images_per_s" in r][1:] or [math.nan]
    backbone = BACKBONES.create("tiny-cnn")
    from safetensors.torch import load_file

    backbone.load_state_dict(load_file(run / "encoder" / "model.safetensors"))
    return backbone, float(np.mean(speeds))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/sslcli-digits-bench"))
    parser.add_argument("--epochs", type=int, default=EPOCHS_DEFAULT)
    args = parser.parse_args()
    digits = Digits.prepared_in(args.work)
    print(f"threads {torch.get_num_threads()}, {args.epochs} epochs, batch {BATCH}, {SIZE} px")
    runs = {
        "lightly": lambda: lightly_run(digits.train_dir, args.epochs),
        "sslcli": lambda: sslcli_run(digits.train_dir, args.work, args.epochs),
    }
    for name, run in runs.items():
        backbone, speed = run()
        accuracy = digits.knn(backbone)
        print(f"{name:8s} {speed:8.1f} img/s   kNN {accuracy:.3f}")


if __name__ == "__main__":
    main()
