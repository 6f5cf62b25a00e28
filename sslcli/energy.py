"""The energy F(x, y) of image pairs under a trained joint-embedding model.

Low energy means compatible. For a joint-embedding (siamese) model the energy is
``1 - cos(e(x), e(y))`` of the two images' embeddings, in [0, 2]: 0 for the same direction,
1 for orthogonal embeddings. With ``views`` > 0 it is averaged over that many augmented view
pairs (view k of x against view k of y), drawn reproducibly from ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sslcli.engine.runtime import Runtime
from sslcli.errors import usage_error
from sslcli.models.trained import TrainedModel


def cosine_energy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) matrix of ``1 - cos`` between the rows of ``a`` and of ``b``."""
    return 1 - F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T


def energy_matrix(
    model: TrainedModel,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
    runtime: Runtime,
    space: str,
    views: int = 0,
    seed: int = 0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Energies (A, B) between every image of ``pixels_a`` and every image of ``pixels_b``."""
    from sslcli.embedding import embed_pixels

    if views < 0:
        raise usage_error(f"--views must be 0 or more, got {views}")
    if views == 0:
        a = embed_pixels(model, pixels_a, runtime, space, batch_size, show=False)
        b = embed_pixels(model, pixels_b, runtime, space, batch_size, show=False)
        return cosine_energy(a, b)
    total = torch.zeros(len(pixels_a), len(pixels_b))
    for view in range(views):
        a = _embed_view(model, pixels_a, 0, runtime, space, view, seed, batch_size)
        b = _embed_view(model, pixels_b, len(pixels_a), runtime, space, view, seed, batch_size)
        total += cosine_energy(a, b)
    return total / views


@torch.inference_mode()
def _embed_view(
    model: TrainedModel,
    pixels: np.ndarray,
    first_id: int,
    runtime: Runtime,
    space: str,
    view: int,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """Embeddings of view number ``view`` of each image, drawn with the model's training
    augmentation (``simclr`` for models that record none); image i has id ``first_id + i``."""
    from sslcli.augment.ops import normalize
    from sslcli.augment.presets import PRESETS, customise
    from sslcli.augment.views import apply_views, sample_view
    from sslcli.eval.features import pixels_to_batch

    settings = model.view_settings
    changes = {"size": model.size, **settings.get("view_changes", {})}
    preset = customise(PRESETS.create(settings.get("preset", "simclr")), changes, {})
    recipe = preset.recipe(view)
    encoder = model.encoder(space).to(runtime.device)
    parts = []
    for start in range(0, len(pixels), batch_size):
        images = pixels_to_batch(
            pixels[start : start + batch_size], runtime.device, (0, 0, 0), (1, 1, 1)
        )
        ids = torch.arange(first_id + start, first_id + start + len(images))
        side = torch.full_like(ids, images.shape[-1])
        drawn = sample_view(recipe, ids, side, side, seed, view)
        (viewed,) = apply_views(images, [(drawn, recipe)])
        with runtime.autocast():
            parts.append(encoder(normalize(viewed, model.mean, model.std)).float().cpu())
    return torch.cat(parts)
