"""The views a training step sees: this rank's share of the global batch, augmented.

Every image is decoded once into the image store (``data.store``: shorter side bounded, aspect
kept); each step decodes the global batch's stored images, pads them into one batch and cuts
every view from the WHOLE image with torchvision's RandomResizedCrop semantics (area and aspect
relative to the full image), then the ``augment`` ops run on the training device. The global
batch at a step, and every view's random parameters, depend only on the seed, the epoch and
the image, so 2 processes x B see exactly what 1 process x 2B sees, and a resumed run what an
uninterrupted one saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from sslcli.augment.views import apply_views, sample_view
from sslcli.data.normalization import normalize

if TYPE_CHECKING:
    from sslcli.augment.presets import Preset
    from sslcli.data.store import StoredImages
    from sslcli.engine.runtime import Runtime
    from sslcli.training.config import TrainingConfig


def padded_batch(images: list[torch.Tensor]) -> torch.Tensor:
    """Images of different sizes as one (N, 3, H, W) uint8 batch of the largest height and
    width; each image's last row and column repeat into its padding, so a rotated crop near an
    edge sees the edge (as ``padding_mode="border"`` would on the image alone)."""
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    batch = images[0].new_empty((len(images), 3, height, width))
    for row, image in enumerate(images):
        h, w = image.shape[1:]
        batch[row, :, :h, :w] = image
        if w < width:
            batch[row, :, :h, w:] = image[:, :, w - 1 :]
        if h < height:
            batch[row, :, h:, :] = batch[row, :, h - 1 : h, :]
    return batch


class ViewBatches:
    """This rank's two views of the global batch at a step."""

    def __init__(
        self,
        images: StoredImages,
        config: TrainingConfig,
        preset: Preset,
        runtime: Runtime,
        steps_per_epoch: int,
    ) -> None:
        self.images = images
        self.config = config
        self.recipes = [preset.recipe(0), preset.recipe(1)]
        self.runtime = runtime
        self.steps_per_epoch = steps_per_epoch
        self._order: tuple[int, torch.Tensor] | None = None
        """The data order of the latest epoch asked for: computed once per epoch, not per step."""

    def local_indices(self, step: int) -> torch.Tensor:
        """The images (indices into the store's images) of this rank's share of the step."""
        config, rank = self.config, self.runtime.rank
        epoch, within = divmod(step, self.steps_per_epoch)
        cached = self._order  # one read: the prefetch thread may replace it meanwhile
        if cached is None or cached[0] != epoch:
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            cached = (epoch, torch.randperm(len(self.images), generator=generator))
            self._order = cached
        batch = cached[1][within * config.batch_size : (within + 1) * config.batch_size]
        return batch[rank * config.per_device_batch : (rank + 1) * config.per_device_batch]

    def views(self, step: int) -> list[torch.Tensor]:
        """The step's views as float batches in [0, 1], before standardisation."""
        config, runtime = self.config, self.runtime
        epoch = step // self.steps_per_epoch
        local = self.local_indices(step)
        decoded = self.images.tensors(local.tolist(), runtime.device)
        images = padded_batch(decoded).float().div_(255)
        ids = local + epoch * len(self.images)
        heights = torch.from_numpy(self.images.heights[local.numpy()])
        widths = torch.from_numpy(self.images.widths[local.numpy()])
        drawn = [
            (sample_view(recipe, ids, heights, widths, config.seed, k), recipe)
            for k, recipe in enumerate(self.recipes)
        ]
        return apply_views(images, drawn)

    def __call__(self, step: int) -> list[torch.Tensor]:
        mean, std = self.config.mean, self.config.std
        return [normalize(view, mean, std) for view in self.views(step)]
