"""The one device a text command runs on, from ``--gpus`` or ``--device``."""

from __future__ import annotations

import os
from pathlib import Path

from sslcli.errors import usage_error


def resolve_text_device(gpus: int | None, device: str | None, cuda_count: int) -> str:
    """``--device`` (``cpu``, ``cuda``, ``cuda:N``) wins; else ``--gpus`` 0 or 1; else one
    GPU when CUDA is present, else the CPU. Text commands use a single device."""
    if device is not None:
        return _checked_device(device, cuda_count)
    if gpus is None:
        return "cuda" if cuda_count > 0 else "cpu"
    if gpus not in (0, 1):
        raise usage_error(
            f"--gpus {gpus}: text commands run on one device", "use --gpus 1 or --gpus 0 (CPU)"
        )
    return _checked_device("cuda" if gpus else "cpu", cuda_count)


def _checked_device(device: str, cuda_count: int) -> str:
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return device
    if kind != "cuda" or (index and not index.isdigit()):
        raise usage_error(f"unknown device {device!r}", "use cpu, cuda or cuda:N")
    if int(index or 0) >= cuda_count:
        found = f"found {cuda_count} GPU" + ("" if cuda_count == 1 else "s")
        raise usage_error(f"--device {device} asked, {found}", "use --device cpu")
    return device


def asks_for_cpu(gpus: int | None, device: str | None) -> bool:
    """True when ``resolve_text_device`` would choose the CPU, told without importing torch:
    ``--device cpu``, ``--gpus 0``, or neither on a machine showing no GPU. Anything else
    (a GPU asked, a value to refuse, a GPU that may be there) is for torch to judge."""
    if device is not None:
        return device == "cpu"
    if gpus is not None:
        return gpus == 0
    return not _gpu_may_be_present()


def _gpu_may_be_present() -> bool:
    """A GPU torch could use may be present: the NVIDIA driver lists one, or there is a ROCm
    (``/dev/kfd``) or WSL (``/dev/dxg``) GPU device, unless ``CUDA_VISIBLE_DEVICES`` hides
    them all (empty or -1, as torch reads it)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    nvidia = Path("/proc/driver/nvidia/gpus")
    listed = nvidia.is_dir() and any(nvidia.iterdir())
    return listed or Path("/dev/kfd").exists() or Path("/dev/dxg").exists()
