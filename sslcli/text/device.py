"""The one device a text command runs on, from ``--gpus`` or ``--device``."""

from __future__ import annotations

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
