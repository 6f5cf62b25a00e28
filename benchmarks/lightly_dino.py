"""lightly's DINO (its documented example loop) on sample_data/digits, beside sslcli's check
run of benchmarks/RESULTS.md ("ViTs with DINO and LeJEPA on the digits"): does a short DINO
run leave the uniform collapse (loss = ln K) in lightly's implementation?

Setup (as benchmarks/lightly_methods.py): pip install --no-deps --target .bench/lightly
lightly==1.6.0 lightning-utilities. The same settings as the sslcli run `sslcli train-siamese
sample_data/digits --method dino --backbone small-cnn --size 32 --preset digits --local-crops 2
--epochs 15 --batch-size 128 --prototypes 256 --lr 0.002`: sslcli's small-cnn, DINO head
2048-256 -> 256 prototypes, 2 global 32 px + 2 local 16 px crops (0.6-1, brightness/contrast
0.4 at p .8), AdamW lr 0.002 x 128/256 with weight decay 0.04, teacher momentum 0.996 -> 1,
lightly's teacher temperature warm-up over 5 epochs, its last layer frozen for the first
epoch. Prints the loss every 10 steps beside ln K.

Run: PYTHONPATH=.:.bench/lightly python benchmarks/lightly_dino.py
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torchvision.transforms.v2 as T
from PIL import Image
from torch import nn

from sslcli.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from sslcli.models.backbones import BackboneOptions, build_backbone

DIGITS = Path(__file__).resolve().parent.parent / "sample_data" / "digits"
PROTOTYPES = 256
EPOCHS = 15
BATCH = 128


def _views(size: int) -> T.Compose:
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
        T.RandomApply([T.ColorJitter(0.4, 0.4)], p=0.8),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
    ])  # fmt: skip


def main() -> None:
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.utils.scheduler import cosine_schedule

    torch.manual_seed(0)
    images = [
        T.functional.to_image(Image.open(p).convert("RGB")) for p in sorted(DIGITS.glob("*/*.png"))
    ]
    global_view, local_view = _views(32), _views(16)
    backbone = build_backbone("small-cnn", BackboneOptions())
    head = DINOProjectionHead(backbone.out_dim, 2048, 256, PROTOTYPES, freeze_last_layer=1)
    teacher = nn.Sequential(
        copy.deepcopy(backbone), DINOProjectionHead(backbone.out_dim, 2048, 256, PROTOTYPES)
    )
    deactivate_requires_grad(teacher)
    student = nn.Sequential(backbone, head)
    criterion = DINOLoss(output_dim=PROTOTYPES, warmup_teacher_temp_epochs=5)
    optimizer = torch.optim.AdamW(student.parameters(), lr=0.002 * BATCH / 256, weight_decay=0.04)
    step = 0
    for epoch in range(EPOCHS):
        order = torch.randperm(len(images))
        momentum = cosine_schedule(epoch, EPOCHS, 0.996, 1)
        for start in range(0, len(images) - BATCH + 1, BATCH):
            chosen = order[start : start + BATCH].tolist()
            views = [torch.stack([global_view(images[i]) for i in chosen]) for _ in range(2)]
            views += [torch.stack([local_view(images[i]) for i in chosen]) for _ in range(2)]
            update_momentum(student, teacher, m=momentum)
            with torch.no_grad():
                targets = [teacher(view) for view in views[:2]]
            loss = criterion(targets, [student(view) for view in views], epoch=epoch)
            loss.backward()
            head.cancel_last_layer_gradients(current_epoch=epoch)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step % 10 == 0:
                print(f"step {step}: loss {loss.item():.4f} (ln K {math.log(PROTOTYPES):.4f})")


if __name__ == "__main__":
    main()
