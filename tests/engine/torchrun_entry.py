"""Run by ``torchrun`` in tests: join torchrun's process group and do the equivalence step."""

import os
import sys
from pathlib import Path

from sslcli.engine.launch import launch, plan_launch
from tests.engine.test_collectives import step

if __name__ == "__main__":
    launch(plan_launch(0, 1, 0, os.environ), "fp32", 0, step, Path(sys.argv[1]), Path(sys.argv[2]))
