"""``--batch-size auto``: the largest per-GPU batch whose training step fits in GPU memory.

The step is run, not estimated: two optimiser steps at a candidate batch (the second holds the
optimiser's state as well as the activations), with the peak of memory that PyTorch's caching
allocator reserved measured against the card's total. Candidates double from ``granularity``
until one fails, then a bisection narrows the gap to a few percent. A margin keeps room for
what the probe does not see (the data path's buffers, DDP's gradient buckets, fragmentation).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sslcli.errors import usage_error

MARGIN = 0.85
"""The share of the card's memory a probed step may reserve at its peak."""
LARGEST = 65536
"""The largest per-GPU batch tried."""


@dataclass(frozen=True)
class Fit:
    batch: int
    """The largest per-GPU batch that fitted."""
    peak_bytes: int
    """The memory reserved at that batch's peak."""
    total_bytes: int
    """The card's memory."""
    tried: int
    """How many batch sizes were run."""


def largest_fitting(
    fits: Callable[[int], bool], granularity: int, largest: int = LARGEST
) -> tuple[int, int]:
    """The largest multiple of ``granularity`` up to ``largest`` for which ``fits`` holds
    (0 when ``granularity`` does not fit) to within 1/16 of it, assuming that whatever is
    below a fitting batch fits; and how many batches were tried."""
    tried, good, bad = 0, 0, None
    batch = granularity
    while batch <= largest:  # doubling until one fails
        tried += 1
        if not fits(batch):
            bad = batch
            break
        good, batch = batch, batch * 2
    if bad is None:
        return good, tried
    while bad - good > max(granularity, good // 16):  # bisection between good and bad
        middle = (good + bad) // 2 // granularity * granularity
        if middle in (good, bad):
            break
        tried += 1
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good, tried


def measure_largest_batch(
    step: Callable[[int], None], device: torch.device, granularity: int = 8
) -> Fit:
    """The largest per-GPU batch for which two calls of ``step(batch)`` (one training step
    each) reserve at most ``MARGIN`` of ``device``'s memory and do not run out of it."""
    if device.type != "cuda":
        raise ValueError(f"the batch probe measures GPU memory, and {device} is no GPU")
    _, total = torch.cuda.mem_get_info(device)
    peaks: dict[int, int] = {}

    def fits(batch: int) -> bool:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            for _ in range(2):
                step(batch)
            torch.cuda.synchronize(device)
        except torch.OutOfMemoryError:
            return False
        finally:
            gc.collect()
            torch.cuda.empty_cache()
        peaks[batch] = torch.cuda.max_memory_reserved(device)
        return peaks[batch] <= MARGIN * total

    batch, tried = largest_fitting(fits, granularity)
    if batch == 0:
        raise usage_error(
            f"a batch of {granularity} per GPU does not fit in the GPU's {total / 2**30:.0f} GiB",
            "train at a smaller --size or with a smaller --backbone",
        )
    return Fit(batch, peaks[batch], total, tried)
