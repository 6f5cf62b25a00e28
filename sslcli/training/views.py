"""The views a training step sees: this rank's share of the global batch, augmented.

Every image is decoded once into a uint8 cache at the training resolution; each step takes
the global batch's images from it and draws the views on the training device with the
``augment`` ops. The global batch at a step, and every view's random parameters, depend only
on the seed, the epoch and the image, so 2 processes x B see exactly what 1 process x 2B
sees, and a resumed run what an uninterrupted one saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sslcli.augment.views import apply_views, sample_view
from sslcli.data.normalization import normalize

if TYPE_CHECKING:
    import numpy as np

    from sslcli.augment.presets import Preset
    from sslcli.engine.runtime import Runtime
    from sslcli.training.config import TrainingConfig


class ViewBatches:
    """This rank's two views of the global batch at a step."""

    def __init__(
        self,
        pixels: np.ndarray,
        config: TrainingConfig,
        preset: Preset,
        runtime: Runtime,
        steps_per_epoch: int,
    ) -> None:
        self.pixels = pixels
        self.config = config
        self.recipes = [preset.recipe(0), preset.recipe(1)]
        self.runtime = runtime
        self.steps_per_epoch = steps_per_epoch
        self._order: tuple[int, torch.Tensor] | None = None
        """The data order of the latest epoch asked for: computed once per epoch, not per step."""

    def local_indices(self, step: int) -> torch.Tensor:
        """The images (indices into the cache) of this rank's share of the step's batch."""
        config, rank = self.config, self.runtime.rank
        epoch, within = divmod(step, self.steps_per_epoch)
        cached = self._order  # one read: the prefetch thread may replace it meanwhile
        if cached is None or cached[0] != epoch:
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            cached = (epoch, torch.randperm(len(self.pixels), generator=generator))
            self._order = cached
        batch = cached[1][within * config.batch_size : (within + 1) * config.batch_size]
        return batch[rank * config.per_device_batch : (rank + 1) * config.per_device_batch]

    def __call__(self, step: int) -> list[torch.Tensor]:
        config, runtime = self.config, self.runtime
        epoch = step // self.steps_per_epoch
        count = len(self.pixels)
        local = self.local_indices(step)
        images = torch.from_numpy(self.pixels[local.numpy()]).to(runtime.device, non_blocking=True)
        images = images.permute(0, 3, 1, 2).float().div_(255)
        ids = local + epoch * count
        side = torch.full_like(ids, self.pixels.shape[1])
        drawn = [
            (sample_view(recipe, ids, side, side, config.seed, k), recipe)
            for k, recipe in enumerate(self.recipes)
        ]
        mean, std = config.mean, config.std
        return [normalize(view, mean, std) for view in apply_views(images, drawn)]
