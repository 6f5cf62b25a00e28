"""One-shot ``mask-predict`` start-up: the ONNX fast path against a bare transformers pipeline.

Run: PYTHONPATH=. python benchmarks/mask_predict_startup.py [--repeats 7]

Whole-process wall time of two commands, fresh processes, in pairs (baseline then ours, each
pair's ratio taken so that a change in the machine's load hits both alike), after the
answers' check below has run each once (the file cache is warm):

- baseline: a script that imports transformers, builds ``pipeline("fill-mask")`` on the
  embedded model's folder (float32, CPU) and prints its answer for "This is [MASK] cat."
  (the script of ``mask_predict_speed.py``);
- ours: ``python -m sslcli mask-predict "This is [MASK] cat." --gpus 0`` with the model's
  ONNX copy already in the cache (made beforehand by ``--prepare-onnx``, not timed), so it
  runs onnxruntime and tokenizers without importing torch or transformers.

Both answers are compared first (same top-5 tokens, scores within 1e-4 of the pipeline's
printed four decimals). Prints the median of each and the median, min and max of the pair
ratios; target: ours / baseline <= 0.3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from benchmarks.mask_predict_speed import BASELINE_SCRIPT, SENTENCE
from sslcli.text.models import DEFAULT_TEXT_MODEL, resolve_text_model

TARGET = 0.3
SCORE_TOLERANCE = 1e-4 + 5e-5
"""1e-4, plus the rounding of the pipeline script's printed scores to four decimals."""


def wall_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return time.perf_counter() - start


def paired_wall_times(
    baseline: list[str], ours: list[str], repeats: int
) -> tuple[list[float], list[float]]:
    """Each command's wall times, run in turn (baseline, ours) ``repeats`` times."""
    pairs = [(wall_seconds(baseline), wall_seconds(ours)) for _ in range(repeats)]
    return [first for first, _ in pairs], [second for _, second in pairs]


def same_answers(baseline: list[str], ours: list[str]) -> None:
    """Exit unless both commands give the same top-5 guesses and scores."""
    printed = subprocess.run(baseline, capture_output=True, text=True, check=True).stdout
    expected = [(token, float(score)) for token, score in map(str.split, printed.splitlines())]
    report = subprocess.run([*ours, "--json"], capture_output=True, text=True, check=True)
    (guesses,) = json.loads(report.stdout)["results"][0]["guesses"]
    got = [(guess["token"], guess["score"]) for guess in guesses]
    tokens_agree = [token for token, _ in got] == [token for token, _ in expected]
    scores_agree = all(
        abs(mine - theirs) <= SCORE_TOLERANCE
        for (_, mine), (_, theirs) in zip(got, expected, strict=True)
    )
    if not (tokens_agree and scores_agree):
        sys.exit(f"the answers differ: pipeline {expected}, sslcli {got}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    repeats = parser.parse_args().repeats
    folder = resolve_text_model(DEFAULT_TEXT_MODEL).location
    sslcli = [sys.executable, "-m", "sslcli", "mask-predict"]
    subprocess.run([*sslcli, "--prepare-onnx"], check=True)  # the cache is warm from here
    baseline = [sys.executable, "-c", BASELINE_SCRIPT, folder, SENTENCE]
    ours = [*sslcli, SENTENCE, "--gpus", "0"]
    same_answers(baseline, ours)
    baseline_times, our_times = paired_wall_times(baseline, ours, repeats)
    ratios = [mine / theirs for mine, theirs in zip(our_times, baseline_times, strict=True)]
    print(f"one sentence, whole process, {repeats} pairs (median):")
    print(f"  pipeline script      {statistics.median(baseline_times):6.2f} s  (baseline)")
    print(f"  sslcli mask-predict  {statistics.median(our_times):6.2f} s  (ONNX cache warm)")
    print(
        f"  ratio ours / baseline: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= {TARGET})"
    )


if __name__ == "__main__":
    main()
