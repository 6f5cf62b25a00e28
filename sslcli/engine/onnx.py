"""A torch module written as ONNX, and checked against torch with onnxruntime (torch is
imported only by the functions that need it: reading an ONNX file does not).

The graph comes from ``torch.onnx.export``'s exporter built on ``torch.export`` (the
``dynamo=True`` path, which needs ``onnx`` and ``onnxscript``); the named axes of the inputs
stay free (a dynamic batch, a text's length), everything else is fixed at the example's
shapes. Key-value metadata (how to feed the model) goes into the file's ``metadata_props``.
The weights live inside the one ``.onnx`` file up to 1.5 GiB, beside it (``NAME.data``)
above: protobuf cannot hold more than 2 GiB.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sslcli.errors import runtime_error, usage_error

if TYPE_CHECKING:
    import torch
    from torch import nn

INLINE_WEIGHT_BYTES = 3 * 2**29
"""Up to this many bytes of weights are stored inside the ``.onnx`` file itself."""
ONNX_EXTRA = "pip install 'sslcli[onnx]'"


def require(module: str) -> None:
    """Refuse clearly when an optional ONNX package is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise usage_error(f"ONNX export and inference need the {module} package", ONNX_EXTRA)


def write_onnx(
    module: nn.Module,
    example: Sequence[torch.Tensor],
    path: Path,
    input_names: Sequence[str],
    output_name: str,
    free_axes: Mapping[str, Mapping[int, str]],
    metadata: Mapping[str, str],
) -> None:
    """Write ``module`` (in eval mode, on the CPU) called on ``example`` to ``path`` (the
    caller makes the write atomic: a temporary folder, say).

    ``free_axes`` names, per input, the axes left dynamic (``{"images": {0: "batch"}}``);
    an axis name shared by several inputs is one dimension.
    """
    import torch

    for package in ("onnx", "onnxscript"):
        require(package)
    dims: dict[str, torch.export.Dim] = {}
    shapes = tuple(
        {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.items()}
        for axes in (free_axes.get(name, {}) for name in input_names)
    )
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    # the exporter reports its stages on stdout, and the tracer warns about Python ``if``s on
    # shapes (in timm and transformers) that the free axes do not change
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            tuple(example),
            input_names=list(input_names),
            output_names=[output_name],
            dynamic_shapes=shapes,
            dynamo=True,
            verbose=False,
        )
    if program is None:  # pragma: no cover - the dynamo exporter always returns its program
        raise runtime_error(f"torch.onnx.export gave no program for {path}")
    program.model.metadata_props.update(metadata)
    program.save(str(path), external_data=weight_bytes > INLINE_WEIGHT_BYTES)


def largest_difference(path: Path, module: nn.Module, inputs: Mapping[str, torch.Tensor]) -> float:
    """The largest absolute difference between the ONNX file's output, run by onnxruntime on
    the CPU, and ``module``'s on the same inputs (in the order the file declares them)."""
    require("onnxruntime")
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fed = {name: tensor.cpu().numpy() for name, tensor in inputs.items()}
    (from_onnx,) = session.run(None, fed)
    with torch.inference_mode():
        from_torch = module.eval()(*inputs.values()).float().cpu().numpy()
    if from_onnx.shape != from_torch.shape:
        raise runtime_error(
            f"{path} gives outputs of shape {from_onnx.shape}, torch {from_torch.shape}",
            "report this: the export went wrong",
        )
    return float(np.abs(from_onnx - from_torch).max())
