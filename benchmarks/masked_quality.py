"""Masked prediction on OpenCV's digits: pixels (MAE) against latent prediction without z and
with z, for the same number of epochs, over several seeds (issue 22's quality table).

Data: the split of ``siamese_quality.py`` (4000 train / 1000 test digits, 32 px; its setup
step downloads Debian's ``opencv-doc`` and cuts the sheet). Each variant trains
``train-latent --objective masked`` on the train digits with a ViT-tiny of 4 px patches,
evaluated on the test digits (``--eval-dir``):

- ``pixels``: ``--predict pixels`` (MAE, 75% of the patches hidden);
- ``z off``: ``--latent-dim 0`` (I-JEPA's objective);
- ``z 16``: ``--latent-dim 16`` (the regularised latent, inferred per image).

Per run: kNN (cosine, k=200, as ``siamese_quality.py``) of the test digits against the train
digits on the class token (what the runs' own evaluation reads) and on the averaged patch
tokens (``--space patch``, what I-JEPA and MAE evaluate: their objectives train the patch
tokens, not the class token); the held-out figures the run logged at its last evaluation
(the z-gap E(z=0) - F of the latent runs, the pixel error of MAE); and, for the latent runs,
the diversity of the completions of a digit's lower half:

- for each of the first ``--diversity-images`` test digits, its 8 nearest train digits by
  the context encoder's tokens of the upper half (the "similar contexts");
- the real targets: the target encoder's representations of those 8 digits' lower halves;
  their spread is the mean squared distance between two of them;
- the predictions: from the test digit's upper half, with z inferred against each of the 8
  real targets (F's z*, as at training); their spread likewise. Without z there is one
  prediction (spread 0). ``explained`` is the share of the real targets' variance around
  the z = 0 prediction that z* removes: 1 - E(z*) / E(z = 0), averaged.

Run: PYTHONPATH=. python benchmarks/masked_quality.py --work /tmp/digits-bench --seeds 0 1 2
     --epochs 2 [-- extra train-latent options]

The budget is epochs (the same images seen by each variant; the run's wall time is reported
beside it, as this machine gave it): z's inner steps make a step of the z run several times
as long, so at equal wall time it would see fewer images.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.siamese_quality import SIZE, Digits
from sslcli.eval.features import pixels_to_batch
from sslcli.eval.knn import knn_accuracy
from sslcli.inference.hidden_regions import box_patches, mean_pair_distance
from sslcli.methods.latent import squared_error
from sslcli.methods.masked_latent import gather_rows, region_masks
from sslcli.models.backbones import BackboneOptions, build_backbone
from sslcli.models.tokens import patch_grid
from sslcli.runs.loading import PatchMean, load_model

VARIANTS = {
    "pixels": ["--predict", "pixels"],
    "z off": ["--latent-dim", "0"],
    "z 16": ["--latent-dim", "16"],
}
LOWER_HALF = (0.0, 0.5, 1.0, 1.0)
NEIGHBOURS = 8


def train(
    digits: Digits, work: Path, variant: str, seed: int, epochs: int, extra: list[str]
) -> Path:
    options = "".join(f"_{option.lstrip('-')}" for option in extra)
    run = work / "masked" / f"{variant.replace(' ', '-')}-seed{seed}-{epochs}ep{options}"
    if (run / "result.json").exists():
        return run
    command = [
        sys.executable, "-m", "sslcli", "train-latent", str(digits.train_dir),
        "--objective", "masked", "--backbone", "vit-tiny", "--patch-size", "4",
        "--size", str(SIZE), "--batch-size", "64", "--epochs", str(epochs),
        "--eval-dir", str(digits.train_dir.parent / "test"), "--seed", str(seed), "--gpus", "0",
        "--cache-dir", str(work / "cache"), "--out", str(run), "--json",
        *VARIANTS[variant], *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    (run / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return run


def held_out(run: Path) -> dict[str, float]:
    """The held-out figures of the run's last evaluation."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    last = [r for r in records if any(key.startswith("held_out_") for key in r)][-1]
    return {key: value for key, value in last.items() if key.startswith("held_out_")}


def diversity(run: Path, digits: Digits, images: int) -> dict[str, float]:
    """Spread of the z* completions of a test digit's lower half against the spread of the
    real lower halves of its nearest train digits (by their upper halves' context tokens)."""
    trained = load_model(str(run))
    model = trained.masked.eval()

    def batch(pixels: np.ndarray) -> torch.Tensor:
        return pixels_to_batch(pixels, torch.device("cpu"), trained.mean, trained.std)

    rows, columns = patch_grid(model.backbone, SIZE, SIZE)
    hidden = box_patches(LOWER_HALF, rows, columns)
    with torch.no_grad():
        train_pixels = batch(digits.train_pixels)
        train_masks = region_masks(hidden, rows * columns, len(train_pixels))
        train_context = model.context(train_pixels, train_masks).mean(dim=1)
        train_context = torch.nn.functional.normalize(train_context, dim=1)
        index = hidden[None].expand(len(train_pixels), -1)
        train_regions = gather_rows(model.targets(train_pixels), index)  # (N, P, D)
        test_pixels = batch(digits.test_pixels[:images])
        test_masks = region_masks(hidden, rows * columns, len(test_pixels))
        test_tokens = model.context(test_pixels, test_masks)
        query = torch.nn.functional.normalize(test_tokens.mean(dim=1), dim=1)
        nearest = (query @ train_context.T).topk(NEIGHBOURS, dim=1).indices
    many = region_masks(hidden, rows * columns, NEIGHBOURS)
    real_spreads, predicted_spreads, explained = [], [], []
    for tokens, chosen in zip(test_tokens, nearest, strict=True):
        regions = train_regions[chosen]
        context = tokens[None].expand(NEIGHBOURS, -1, -1)
        inferred = model.search.minimise(
            lambda z, c=context, r=regions: squared_error(model.predictor(c, many, z), r[:, None]),
            NEIGHBOURS,
            torch.device("cpu"),
        )
        with torch.no_grad():
            predicted = model.predictor(context, many, inferred.z)[:, 0]
            at_best = squared_error(predicted, regions)
        real_spreads.append(mean_pair_distance(regions))
        predicted_spreads.append(mean_pair_distance(predicted))
        explained.append(float((1 - at_best / inferred.energy_at_zero).mean()))
    real, predicted = float(np.mean(real_spreads)), float(np.mean(predicted_spreads))
    return {
        "real_spread": real,
        "predicted_spread": predicted,
        "spread_ratio": predicted / real,
        "explained": float(np.mean(explained)),
    }


def lower_half_sheet(run: Path, digits: Digits, sheet: Path, label: str) -> dict:
    """``sslcli sweep`` of a test digit with its lower half hidden: 6 z, 4 matches each."""
    test = digits.train_dir.parent / "test" / label
    image = sorted(test.iterdir())[0]
    command = [
        sys.executable, "-m", "sslcli", "sweep", str(image), "--model", str(run),
        "--mask", ",".join(map(str, LOWER_HALF)), "--gallery", str(digits.train_dir),
        "--samples", "6", "--top", "4", "--grid", str(sheet), "--gpus", "0", "--json",
    ]  # fmt: skip
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    labels = [[name.split("/")[0] for name in row["matches"]] for row in report["rows"]]
    return {"image": str(image), "labels_per_z": labels} | {
        key: report[key] for key in ("radius", "prediction_spread", "gallery_spread")
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/sslcli-digits-bench"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2, help="of each run")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--diversity-images", type=int, default=100)
    parser.add_argument(
        "--sheet",
        type=Path,
        help="also write the sweep sheet of the first test digit of --sheet-class with its "
        "lower half hidden, from the first z run, against the train digits",
    )
    parser.add_argument("--sheet-class", default="2")
    parser.add_argument("train_options", nargs="*", help="more options for train-latent")
    args = parser.parse_args()
    digits = Digits.prepared_in(args.work)
    torch.manual_seed(0)
    untrained = build_backbone("vit-tiny", BackboneOptions(image_size=SIZE, patch_size=4))

    def flat(pixels: np.ndarray) -> torch.Tensor:  # the raw pixels, as siamese_quality.py's
        return torch.from_numpy(pixels).float().flatten(1)

    raw = knn_accuracy(
        flat(digits.train_pixels), digits.train_labels, flat(digits.test_pixels), digits.test_labels
    )
    print(
        f"floors: raw pixels kNN {raw:.3f}; untrained ViT-tiny kNN {digits.knn(untrained):.3f} "
        f"(class token), {digits.knn(PatchMean(untrained)):.3f} (patch mean)"
    )
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            run = train(digits, args.work, variant, seed, args.epochs, args.train_options)
            result = json.loads((run / "result.json").read_text())
            trained = load_model(str(run))
            row = {
                "variant": variant,
                "seed": seed,
                "steps": result["step"],
                "wall_min": float((run / "wall_seconds.txt").read_text()) / 60,
                "knn_class_token": digits.knn(trained.encoder("backbone")),
                "knn_patch_mean": digits.knn(trained.encoder("patch")),
                **held_out(run),
            }
            if trained.masked is not None:
                row |= diversity(run, digits, args.diversity_images)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.sheet and variant == "z 16" and seed == args.seeds[0]:
                print(json.dumps(lower_half_sheet(run, digits, args.sheet, args.sheet_class)))
    print(
        "\nvariant  seeds  wall min  kNN class token  kNN patch mean  held-out z-gap  spread ratio"
    )
    for variant in args.variants:
        mine = [r for r in rows if r["variant"] == variant]

        def summary(key: str, rows: list[dict] = mine) -> str:
            values = [r[key] for r in rows if key in r]
            if not values:
                return "-"
            digits = 5 if key in ("held_out_z_gap", "spread_ratio") else 3
            low, high = min(values), max(values)
            return f"{np.mean(values):.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"

        print(
            f"{variant:<8} {len(mine):>5}  {summary('wall_min')}  {summary('knn_class_token')}  "
            f"{summary('knn_patch_mean')}  {summary('held_out_z_gap')}  {summary('spread_ratio')}"
        )


if __name__ == "__main__":
    main()
