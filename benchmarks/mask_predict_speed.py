"""mask-predict speed against a bare transformers ``pipeline("fill-mask")`` on the same model.

Run: PYTHONPATH=. python benchmarks/mask_predict_speed.py [--repeats 5] [--sentences 1000]
Two figures, baseline and ours in this one run, printed as ratios:

1. whole-process wall time for one sentence (fresh processes, interleaved, median):
   ``python -m sslcli mask-predict "This is [MASK] cat."`` against a script that imports
   transformers, builds ``pipeline("fill-mask")`` on the same model folder (float32, CPU,
   as sslcli) and prints its answer; target: ours / baseline <= 1.1;
2. throughput on single-mask sentences cut from ``sample_data/text`` (one word masked per
   sentence, seeded) and written to a file: sslcli's ``FillMask`` on the file's lines
   against the pipeline fed the same list, same batch size and top-k (models loaded
   beforehand, not timed; the two alternate over chunks of 128 sentences); target: ours /
   baseline >= 1.0.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sslcli.text.models import DEFAULT_TEXT_MODEL, resolve_text_model

REPO = Path(__file__).resolve().parent.parent
SENTENCE = "This is [MASK] cat."
CHUNK = 128
BASELINE_SCRIPT = """
import sys, torch
from transformers import pipeline
fill = pipeline("fill-mask", model=sys.argv[1], device="cpu", dtype=torch.float32)
for row in fill(sys.argv[2].replace("[MASK]", fill.tokenizer.mask_token)):
    print(row["token_str"], round(row["score"], 4))
"""


def wall_times(commands: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """Median wall time of each command, run interleaved after one warm-up each."""
    for command in commands.values():
        subprocess.run(command, capture_output=True, check=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def masked_sentences(count: int, seed: int = 0) -> list[str]:
    """Sentences of 8-40 words from the sample novels, one word each replaced by [MASK]."""
    text = " ".join(
        p.read_text(encoding="utf-8") for p in sorted((REPO / "sample_data/text").glob("*.txt"))
    )
    rng = random.Random(seed)
    sentences = []
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        words = sentence.split()
        candidates = [i for i, word in enumerate(words) if word.isalpha()]
        if 8 <= len(words) <= 40 and candidates:
            words[rng.choice(candidates)] = "[MASK]"
            sentences.append(" ".join(words))
    if len(sentences) < count:
        sys.exit(f"only {len(sentences)} sentences in sample_data/text")
    return sentences[:count]


def throughput(
    model: str, sentences: list[str], batch_size: int, top_k: int
) -> tuple[float, float]:
    """Sentences per second: (pipeline, sslcli), same model object, same inputs."""
    from transformers import pipeline

    from sslcli.text.fill_mask import FillMask
    from sslcli.text.loading import load_masked_lm

    loaded = load_masked_lm(model, "cpu")
    fill = FillMask(loaded.model, loaded.tokenizer)
    reference = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer, device="cpu")
    native = [s.replace("[MASK]", loaded.tokenizer.mask_token) for s in sentences]
    seconds = {"pipeline": 0.0, "sslcli": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "sentences.txt")
        path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        lines = path.read_text(encoding="utf-8").splitlines()
        # Interleaved chunks, so that a change in the machine's load hits both alike.
        for start in range(0, len(lines), CHUNK):
            begin = time.perf_counter()
            reference(native[start : start + CHUNK], batch_size=batch_size, top_k=top_k)
            seconds["pipeline"] += time.perf_counter() - begin
            begin = time.perf_counter()
            for _ in fill.predict(lines[start : start + CHUNK], top_k=top_k, batch_size=batch_size):
                pass
            seconds["sslcli"] += time.perf_counter() - begin
    baseline, ours = (len(sentences) / seconds[name] for name in ("pipeline", "sslcli"))
    return baseline, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--model", default=DEFAULT_TEXT_MODEL, help="a name or a model folder")
    args = parser.parse_args()
    folder = resolve_text_model(args.model).location
    times = wall_times(
        {
            "pipeline": [sys.executable, "-c", BASELINE_SCRIPT, folder, SENTENCE],
            "sslcli": [
                *(sys.executable, "-m", "sslcli", "mask-predict", SENTENCE),
                *("--model", args.model, "--gpus", "0"),
            ],
        },
        args.repeats,
    )
    print(f"one sentence, whole process (median of {args.repeats}):")
    print(f"  pipeline script      {times['pipeline']:6.2f} s  (baseline)")
    ratio = times["sslcli"] / times["pipeline"]
    print(f"  sslcli mask-predict  {times['sslcli']:6.2f} s  ratio {ratio:.3f}  (target <= 1.1)")
    baseline, ours = throughput(
        args.model, masked_sentences(args.sentences), args.batch_size, args.top_k
    )
    print(f"{args.sentences} single-mask sentences, batch {args.batch_size}, top-k {args.top_k}:")
    print(f"  pipeline             {baseline:7.1f} sentences/s  (baseline)")
    ratio = ours / baseline
    print(f"  sslcli FillMask      {ours:7.1f} sentences/s  ratio {ratio:.3f}  (target >= 1.0)")


if __name__ == "__main__":
    main()
