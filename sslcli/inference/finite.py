"""Refuse to report what a model with non-finite weights (a diverged run) computes.

A model whose weights hold nan or inf gives nan energies and embeddings, which look like
numbers in a table or a file; every output of ``inference`` is checked, and a non-finite one
is a run-time error that names the model and says why.
"""

from __future__ import annotations

import torch

from sslcli.errors import SSLError, runtime_error
from sslcli.runs.loading import TrainedModel


def check_finite(values: torch.Tensor, model: TrainedModel, what: str) -> torch.Tensor:
    """``values`` unchanged when every one is finite; else the error of :func:`not_finite`."""
    if not bool(torch.isfinite(values).all()):
        raise not_finite(model, what)
    return values


def not_finite(model: TrainedModel, what: str) -> SSLError:
    """Why ``model`` gave non-finite ``what``: its own weights, or an overflow on the way."""
    bad, total = non_finite_weights(model)
    if bad:
        return runtime_error(
            f"{model.description} gives non-finite {what}: {bad} of its {total} weights are "
            "not finite (nan or inf), so the run diverged",
            "train it again (e.g. with a lower --lr), or give an earlier checkpoint folder",
        )
    return runtime_error(
        f"{model.description} gives non-finite {what} although its weights are finite",
        "an overflow in reduced precision? try --precision fp32",
    )


def non_finite_weights(model: TrainedModel) -> tuple[int, int]:
    """(non-finite, all) numbers in the parameters and buffers of every part of ``model``."""
    tensors: dict[int, torch.Tensor] = {}
    for part in (model.backbone, model.projector, model.latent):
        if part is not None:
            for tensor in [*part.parameters(), *part.buffers()]:
                tensors[id(tensor)] = tensor
    floating = [t for t in tensors.values() if t.is_floating_point()]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in floating)
    return bad, sum(t.numel() for t in floating)
