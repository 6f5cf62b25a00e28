"""Options shared by the text commands (mask-predict, train-mlm)."""

from __future__ import annotations

from typing import Annotated

import typer

Gpus = Annotated[
    int | None,
    typer.Option(
        help="0 = CPU, 1 = one GPU \\[default: a GPU if CUDA is present]. One device only.",
        show_default=False,
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        help="Explicit device: cpu, cuda or cuda:N (overrides --gpus).", show_default=False
    ),
]


def device_for(gpus: int | None, device: str | None) -> str:
    import torch

    from sslcli.text.device import resolve_text_device

    return resolve_text_device(gpus, device, torch.cuda.device_count())
