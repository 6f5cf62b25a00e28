"""Resolve where and how a process computes: device, precision, seed, CPU threads."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sslcli.errors import usage_error

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(requested: str, device_type: str, bf16_supported: bool) -> str:
    """``auto`` is bf16 on GPUs that support it, fp16 on older GPUs and fp32 on the CPU."""
    if requested not in PRECISIONS:
        raise usage_error(
            f"unknown precision {requested!r}", f"choose one of {', '.join(PRECISIONS)}"
        )
    on_gpu = device_type == "cuda"
    if requested == "auto":
        if not on_gpu:
            return "fp32"
        return "bf16" if bf16_supported else "fp16"
    if requested == "fp16" and not on_gpu:
        raise usage_error("fp16 needs a GPU", "use --precision bf16 or fp32 on the CPU")
    if requested == "bf16" and on_gpu and not bf16_supported:
        raise usage_error("this GPU does not support bf16", "use --precision fp16 or fp32")
    return requested


@dataclass(frozen=True)
class Runtime:
    """What one process of a run needs to know about where it computes."""

    device: torch.device
    precision: str
    seed: int
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process prints and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for the forward pass; a no-op in fp32."""
        import torch

        dtype = self.autocast_dtype
        if dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield


def make_runtime(
    device_type: str,
    precision: str,
    seed: int,
    *,
    rank: int = 0,
    local_rank: int = 0,
    world_size: int = 1,
) -> Runtime:
    """Pick this process's device, resolve the precision, and seed every generator."""
    import torch

    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        bf16 = torch.cuda.is_bf16_supported()
    else:
        device = torch.device("cpu")
        bf16 = True
    seed_everything(seed)
    return Runtime(
        device=device,
        precision=resolve_precision(precision, device_type, bf16),
        seed=seed,
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
    )


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's global generators (the same on every rank).

    Code that needs different randomness per rank derives it from ``seed`` and the rank.
    """
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise usage_error(f"--threads must be 1 or more, got {threads}")


def set_threads(threads: int | None) -> int:
    """Compute with ``threads`` CPU threads in this process (``--threads``); ``None`` leaves
    torch's default. Returns the intra-op threads torch now uses.

    Inter-op threads are set too when this process can still set them (torch allows it once,
    before any parallel work); the intra-op threads are the ones a forward pass uses.
    """
    import torch

    if threads is None:
        return torch.get_num_threads()
    check_threads(threads)
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(threads)
    return torch.get_num_threads()
