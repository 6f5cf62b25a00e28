"""The energy F(x, y) of image pairs under a trained model: low means compatible.

- Joint-embedding (siamese) models: ``1 - cos(e(x), e(y))`` of the two images' embeddings,
  in [0, 2]: 0 for the same direction, 1 for orthogonal embeddings.
- Latent-variable models (``train-latent``): F(x, y) = min_z E(x, y, z) + lambda R(z), with
  E the predictor's error on y's target from x's context and z (see ``methods.latent``);
  also reported: E(x, y, z=0), the z-gap E(z=0) - F and ||z*||.

With ``views`` > 0 the energies are averaged over that many augmented view pairs (view k of
x against view k of y), drawn reproducibly from ``seed`` with the run's augmentation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.runtime import Runtime
from sslcli.errors import usage_error
from sslcli.inference.finite import check_finite
from sslcli.runs.loading import TrainedModel

PAIR_CHUNK = 4096
"""Pairs whose latent z is inferred together (memory: chunk x (latent + embedding) floats)."""


def cosine_energy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) matrix of ``1 - cos`` between the rows of ``a`` and of ``b``."""
    return 1 - F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T


def energy_matrices(
    model: TrainedModel,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
    runtime: Runtime,
    space: str,
    views: int = 0,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, torch.Tensor]:
    """Energies (A, B) between every image of ``pixels_a`` and every image of ``pixels_b``:
    ``energy`` for every model, and ``energy_at_zero``, ``z_gap``, ``z_norm`` for latent ones."""
    return _energies(model, pixels_a, pixels_b, None, runtime, space, views, seed, batch_size)


def pair_energies(
    model: TrainedModel,
    pixels: np.ndarray,
    pairs: torch.Tensor,
    runtime: Runtime,
    space: str,
    views: int = 0,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, torch.Tensor]:
    """Energies (P,) of the pairs (P, 2) of indices into ``pixels`` (x's row, y's row) alone,
    not of a whole matrix; the same parts as :func:`energy_matrices`. Each image is embedded
    once as an x and once as a y (with views: as two inputs, so (a, a) compares two views)."""
    return _energies(model, pixels, pixels, pairs, runtime, space, views, seed, batch_size)


def _energies(
    model: TrainedModel,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
    pairs: torch.Tensor | None,
    runtime: Runtime,
    space: str,
    views: int,
    seed: int,
    batch_size: int,
) -> dict[str, torch.Tensor]:
    """Energies of the pairs (P, 2), row i of ``pixels_a`` as x against row j of ``pixels_b``
    as y, or the (A, B) matrices of every pair when ``pairs`` is None; averaged over the view
    passes; non-finite ones (a diverged model) are an error."""
    if views < 0:
        raise usage_error(f"--views must be 0 or more, got {views}")

    def embedded(pixels: np.ndarray, first_id: int, encoder: nn.Module, view: int):
        if views == 0:
            return embed_with(model, pixels, runtime, encoder, batch_size)
        return _embed_view(model, pixels, first_id, runtime, encoder, view, seed, batch_size)

    passes = []
    for view in range(max(views, 1)):
        if model.latent is None:
            encoder = model.encoder(space)
            a = embedded(pixels_a, 0, encoder, view)
            same = views == 0 and pixels_b is pixels_a  # the pairs of one set, without views
            b = a if same else embedded(pixels_b, len(pixels_a), encoder, view)
            if pairs is None:
                passes.append({"energy": cosine_energy(a, b)})
            else:
                passes.append({"energy": _row_cosine_energy(a[pairs[:, 0]], b[pairs[:, 1]])})
        else:
            context = embedded(pixels_a, 0, model.encoder("projector"), view)
            target = embedded(pixels_b, len(pixels_a), TargetEncoder(model.latent), view)
            if pairs is None:
                passes.append(latent_energies(model, context, target))
            else:
                passes.append(latent_pair_energies(model, context, target, pairs))
    averaged = {name: torch.stack([p[name] for p in passes]).mean(dim=0) for name in passes[0]}
    for name, values in averaged.items():
        check_finite(values, model, "energies" if name == "energy" else name.replace("_", " "))
    return averaged


def _row_cosine_energy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between row i of ``a`` and row i of ``b``, as :func:`cosine_energy` does."""
    return 1 - (F.normalize(a.float(), dim=1) * F.normalize(b.float(), dim=1)).sum(dim=1)


def latent_energies(
    model: TrainedModel, context: torch.Tensor, target: torch.Tensor
) -> dict[str, torch.Tensor]:
    """F and its parts for every (context row, target row) pair, z inferred per pair."""
    rows, columns = len(context), len(target)
    pairs = torch.cartesian_prod(torch.arange(rows), torch.arange(columns))
    energies = latent_pair_energies(model, context, target, pairs)
    return {name: values.reshape(rows, columns) for name, values in energies.items()}


def latent_pair_energies(
    model: TrainedModel, context: torch.Tensor, target: torch.Tensor, pairs: torch.Tensor
) -> dict[str, torch.Tensor]:
    """F and its parts (P,) for the pairs (P, 2) of (context row, target row), z per pair."""
    latent = model.latent
    parts: dict[str, list[torch.Tensor]] = {"energy": [], "energy_at_zero": [], "z_norm": []}
    for chunk in pairs.split(PAIR_CHUNK):
        # clone: embeddings made under inference_mode cannot enter the autograd graph on z
        inferred = latent.infer(context[chunk[:, 0]].clone(), target[chunk[:, 1]].clone())
        parts["energy"].append(inferred.free_energy)
        parts["energy_at_zero"].append(inferred.energy_at_zero)
        parts["z_norm"].append(inferred.z.norm(dim=1))
    result = {name: torch.cat(values) for name, values in parts.items()}
    result["z_gap"] = result["energy_at_zero"] - result["energy"]
    return result


class TargetEncoder(nn.Module):
    """Images to the latent model's targets: LayerNorm(EMA expander(EMA backbone(y)))."""

    def __init__(self, latent: nn.Module) -> None:
        super().__init__()
        self.latent = latent
        self.training = latent.training  # so restoring this module's mode restores latent's

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.latent.target(images)


def embed_with(
    model: TrainedModel,
    pixels: np.ndarray,
    runtime: Runtime,
    encoder: nn.Module,
    batch_size: int,
) -> torch.Tensor:
    """Features of decoded images through any of the model's encoders (no views); non-finite
    ones (a diverged model) are an error."""
    from sslcli.eval.features import extract_features

    encoder = encoder.to(runtime.device, memory_format=torch.channels_last)
    features = extract_features(encoder, pixels, runtime, batch_size, model.mean, model.std)
    return check_finite(features, model, "embeddings")


@torch.inference_mode()
def _embed_view(
    model: TrainedModel,
    pixels: np.ndarray,
    first_id: int,
    runtime: Runtime,
    encoder: nn.Module,
    view: int,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """Embeddings of view number ``view`` of each image, drawn with the model's training
    augmentation (``simclr`` for models that record none); image i has id ``first_id + i``."""
    from sslcli.augment.presets import PRESETS, customise
    from sslcli.augment.views import apply_views, sample_view
    from sslcli.data.normalization import normalize
    from sslcli.eval.features import pixels_to_batch

    settings = model.view_settings
    changes = {"size": model.size, **settings.get("view_changes", {})}
    preset = customise(PRESETS.create(settings.get("preset", "simclr")), changes, {})
    recipe = preset.recipe(view)
    encoder = encoder.eval().to(runtime.device)
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
    return check_finite(torch.cat(parts), model, "embeddings")
