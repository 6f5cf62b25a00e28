"""A run's ``metrics.jsonl``: one JSON record per line, each with the step it describes.

A resumed run trains again the steps after its checkpoint, so it first drops their records
(which a killed run may have written after its last checkpoint): the file then reads like
that of an uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sslcli.engine.atomic import write_failure, write_text_atomic
from sslcli.errors import runtime_error

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_FILE

    def append(self, record: dict[str, Any]) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as error:
            raise runtime_error(
                write_failure(self.path, error), "free space, then resume the run"
            ) from None

    def forget_after(self, step: int) -> None:
        """Drop the records of steps after ``step``."""
        if self.path.is_file():
            kept = [
                line
                for line in self.path.read_text(encoding="utf-8").splitlines()
                if json.loads(line)["step"] <= step
            ]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))
