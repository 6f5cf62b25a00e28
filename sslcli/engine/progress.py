"""Progress bars on stderr with throughput, ETA and live metrics; silent off the main rank."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _ThroughputColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{speed:,.1f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed")


class ProgressTracker:
    """Handle given to long work: ``advance(n, loss=0.3)`` moves the bar and shows metrics."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: float = 1, **metrics: float | str) -> None:
        shown = "  ".join(
            f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
            for name, value in metrics.items()
        )
        if metrics:
            self._progress.update(self._task, advance=amount, metrics=shown)
        else:
            self._progress.update(self._task, advance=amount)

    def set_total(self, total: float) -> None:
        self._progress.update(self._task, total=total)


@contextlib.contextmanager
def progress_bar(
    description: str, total: float | None, unit: str, enabled: bool = True, transient: bool = False
) -> Iterator[ProgressTracker]:
    """A rich progress bar on stderr; ``enabled=False`` (other ranks, --json) hides it and
    ``transient`` removes it when done."""
    console = Console(stderr=True)
    # A transient bar leaves nothing behind; outside a terminal it would leave a blank line.
    shown = enabled and (console.is_terminal or not transient)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _ThroughputColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=console,
        disable=not shown,
        transient=transient,
    )
    with progress:
        task = progress.add_task(description, total=total, metrics="")
        yield ProgressTracker(progress, task)
