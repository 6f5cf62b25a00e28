"""Start-up time: `sslcli --help` / `--version` against `python -c "import torch"`.

Run: python benchmarks/startup.py [--repeats 10]
Prints the median wall time of each (fresh processes) and the ratio ours / import torch.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_wall_seconds(command: list[str], repeats: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    repeats = parser.parse_args().repeats
    sslcli = shutil.which("sslcli")
    if sslcli is None:
        sys.exit("sslcli is not on PATH: pip install -e . first")
    baseline = median_wall_seconds([sys.executable, "-c", "import torch"], repeats)
    print(f"python -c 'import torch'   {baseline:6.3f} s  (baseline)")
    for flag in ("--help", "--version"):
        ours = median_wall_seconds([sslcli, flag], repeats)
        print(f"sslcli {flag:<18} {ours:6.3f} s  ratio {ours / baseline:.3f} of import torch")


if __name__ == "__main__":
    main()
