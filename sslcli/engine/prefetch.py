"""Prepare the next step's batch in a background thread while the current step trains.

On a GPU the batch is built on a side CUDA stream and the training stream waits for it, so
the CPU work of step s+1 (cache reads, parameter sampling, kernel launches) overlaps the
GPU compute of step s. Batches are pure functions of the step, so prefetching changes no
result.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

Batch = list[torch.Tensor]


class Prefetcher:
    """``background`` defaults to GPUs only: on a CPU the thread competes with the model for
    the same cores, and on 2 cores it measured no gain."""

    def __init__(
        self, batches: Callable[[int], Batch], device: torch.device, background: bool | None = None
    ) -> None:
        self.batches = batches
        self.device = device
        self.background = device.type == "cuda" if background is None else background
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sslcli-prefetch")
        self.pending: dict[int, Future[tuple[Batch, torch.cuda.Event | None]]] = {}

    def _build(self, step: int) -> tuple[Batch, torch.cuda.Event | None]:
        if self.stream is None:
            return self.batches(step), None
        torch.cuda.set_device(self.device)
        with torch.cuda.stream(self.stream):
            batch = self.batches(step)
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return batch, ready

    def get(self, step: int, next_step: int | None) -> Batch:
        """The batch of ``step``; starts building ``next_step``'s in the background."""
        if not self.background:
            return self.batches(step)
        future = self.pending.pop(step, None) or self.pool.submit(self._build, step)
        batch, ready = future.result()
        if next_step is not None:
            self.pending[next_step] = self.pool.submit(self._build, next_step)
        if ready is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(ready)
            for tensor in batch:
                tensor.record_stream(current)
        return batch

    def close(self) -> None:
        self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)
