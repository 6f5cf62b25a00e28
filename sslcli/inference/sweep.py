"""Several predictions of a latent-variable model: sweep z, see what each z predicts.

For an image x and K latent values (z = 0 first, then K - 1 seeded random directions of one
radius), the predictor gives K predicted target embeddings g(s_x, z_k); each is matched to
the gallery images whose targets it predicts best (lowest E). The default radius is the 90th
percentile of ||z*|| inferred between x and the gallery images: as far as z goes for real
pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sslcli.engine.runtime import Runtime
from sslcli.errors import usage_error
from sslcli.runs.loading import TrainedModel


@dataclass
class SweepRow:
    z: torch.Tensor
    gallery: list[int]
    """Indices of the gallery images this z's prediction matches best, best first."""
    energies: list[float]
    """E between the prediction and each of those images' targets."""


@dataclass
class Sweep:
    radius: float
    rows: list[SweepRow]


def sweep_latent(
    model: TrainedModel,
    image: np.ndarray,
    gallery: np.ndarray,
    runtime: Runtime,
    samples: int = 8,
    top: int = 5,
    radius: float | None = None,
    seed: int = 0,
) -> Sweep:
    """Sweep z for one decoded image (1, S, S, 3) against decoded gallery images."""
    from sslcli.inference.energy import TargetEncoder, embed_with
    from sslcli.inference.finite import check_finite

    latent = model.latent
    if latent is None:
        raise usage_error(
            f"{model.description} has no latent variable to sweep",
            "give a run of sslcli train-latent",
        )
    if samples < 1 or top < 1:
        raise usage_error("--samples and --top must be 1 or more")
    top = min(top, len(gallery))
    context = embed_with(model, image, runtime, model.encoder("projector"), 256).clone()
    targets = embed_with(model, gallery, runtime, TargetEncoder(latent), 256).clone()
    if radius is None:
        inferred = latent.infer(context.expand(len(targets), -1), targets)
        radius = float(inferred.z.norm(dim=1).quantile(0.9))
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(samples - 1, latent.latent_dim, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    zs = torch.cat([torch.zeros(1, latent.latent_dim), radius * directions])
    with torch.no_grad():
        predicted = latent.predictor(context.expand(samples, -1), zs).float()
    errors = check_finite(
        (predicted[:, None, :] - targets[None]).pow(2).mean(dim=2), model, "energies"
    )
    best, index = errors.topk(top, dim=1, largest=False)
    rows = [
        SweepRow(z, order.tolist(), values.tolist())
        for z, order, values in zip(zs, index, best, strict=True)
    ]
    return Sweep(radius, rows)
