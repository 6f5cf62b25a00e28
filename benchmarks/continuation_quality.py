"""How well F(past, future) of a train-latent video run tells true continuations from wrong ones.

Data (synthetic, made here): the moving-digit videos of ``sample_data/make_videos.py`` (a
coloured handwritten digit that bounces off the walls, or that goes up and at a fork turns
left or right), 48 px, 10 fps, 4 s. Each ``make_videos`` seed gives 12 videos with other
digits, colours, starts and speeds; training takes seeds 1..``--train-sets``, testing seeds
1001..1000 + ``--test-sets``: held-out videos the runs never saw.

For each training seed, with z (``--latent-dim`` 16, the default) and without
(``--latent-dim 0``), ``sslcli train-latent --pairs future`` trains on the training videos;
then, on the held-out videos, ``continuation_aucs`` gives the ROC-AUC of F for the true
continuation against a shuffled frame of the same video, the reversed motion (the frame h
before the clip) and the same moment of another video. One table: mean and range over the
seeds, and each seed's figures.

Run: PYTHONPATH=. python benchmarks/continuation_quality.py --work /tmp/continuations
     (add training options after --, e.g. -- --epochs 20)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sslcli.data.video import decoded_videos, scan_videos
from sslcli.engine.runtime import make_runtime
from sslcli.inference.continuations import WRONG_KINDS, continuation_aucs
from sslcli.runs.loading import load_model

REPO = Path(__file__).resolve().parent.parent
TRAINING = [
    "--backbone", "tiny-cnn", "--size", "32", "--batch-size", "64", "--epochs", "10",
    "--projector-hidden-dim", "256", "--projector-dim", "64", "--gpus", "0",
]  # fmt: skip


def make_sets(work: Path, train_sets: int, test_sets: int) -> tuple[Path, Path]:
    """work/train/sNN and work/test/sNN, each one make_videos seed (made once)."""
    sys.path.insert(0, str(REPO / "sample_data"))
    import make_videos

    digits = REPO / "sample_data" / "digits"
    for folder, seeds in (
        ("train", range(1, train_sets + 1)),
        ("test", range(1001, 1001 + test_sets)),
    ):
        for seed in seeds:
            target = work / folder / f"s{seed}"
            if not target.is_dir():
                make_videos.make_videos(digits, target, seed)
    return work / "train", work / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/continuations"))
    parser.add_argument("--train-sets", type=int, default=6)
    parser.add_argument("--test-sets", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("extra", nargs="*", help="training options after --")
    args = parser.parse_args()
    train, test = make_sets(args.work, args.train_sets, args.test_sets)
    cache = args.work / "cache"
    runtime = make_runtime("cpu", "fp32", 0)
    rows: dict[str, list[dict[str, float]]] = {}
    for latent_dim in (16, 0):
        for seed in args.seeds:
            run = args.work / "runs" / f"z{latent_dim}-seed{seed}"
            command = [
                sys.executable, "-m", "sslcli", "train-latent", str(train), "--pairs", "future",
                *TRAINING, "--latent-dim", str(latent_dim), "--seed", str(seed),
                "--cache-dir", str(cache), "--out", str(run), *args.extra,
            ]  # fmt: skip
            if not (run / "result.json").is_file():
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                print(f"trained {run.name} in {time.perf_counter() - started:.0f} s", flush=True)
            model = load_model(str(run))
            assert model.continuation is not None
            videos, _, failures = decoded_videos(
                scan_videos(test), model.continuation.fps, model.size, cache
            )
            assert not failures, failures
            aucs = continuation_aucs(model, videos, runtime, seed)
            rows.setdefault(f"z {latent_dim}" if latent_dim else "no z", []).append(aucs)
            print(f"  {run.name}: " + json.dumps({k: round(v, 3) for k, v in aucs.items()}))
    print(f"\nROC-AUC of F, true vs wrong continuation, held-out videos (seeds {args.seeds})")
    print(f"{'model':8} " + " ".join(f"{kind:>22}" for kind in WRONG_KINDS))
    for name, results in rows.items():
        cells = []
        for kind in WRONG_KINDS:
            values = np.array([r[kind] for r in results])
            cells.append(f"{values.mean():.3f} ({values.min():.3f}-{values.max():.3f})")
        print(f"{name:8} " + " ".join(f"{cell:>22}" for cell in cells))


if __name__ == "__main__":
    main()
