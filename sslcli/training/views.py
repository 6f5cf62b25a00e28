"""The views a training step sees: this rank's share of the global batch, augmented.

Every image is decoded once into the image store (``data.store``: shorter side bounded, aspect
kept); each step decodes the global batch's stored images and cuts every view from the WHOLE
image with torchvision's RandomResizedCrop semantics (area and aspect relative to the full
image, antialiased resize), then the ``augment`` ops run on the training device. The global
batch at a step, and every view's random parameters, depend only on the seed, the epoch and
the image, so 2 processes x B see exactly what 1 process x 2B sees, and a resumed run what an
uninterrupted one saw. Data packed into WebDataset shards (``data.shards``) is streamed by
``ShardBatches`` instead, with the same decoding and the same views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from sslcli.augment.views import cut_views, sample_view
from sslcli.data.normalization import normalize

if TYPE_CHECKING:
    from sslcli.augment.presets import Preset
    from sslcli.augment.recipe import ViewRecipe
    from sslcli.data.shards import Sample, ShardStreams
    from sslcli.data.store import StoredImages
    from sslcli.data.video import FrameImages
    from sslcli.engine.runtime import Runtime
    from sslcli.training.config import TrainingConfig


def view_recipes(preset: Preset, config: TrainingConfig) -> list[ViewRecipe]:
    """The recipe of each view a step draws: the 2 global views, then the local crops."""
    return [preset.recipe(k) for k in range(2 + config.local_crops)]


class RankShare:
    """The samples of one rank's share of each step: every epoch a permutation of all
    ``count`` samples drawn from the seed and the epoch alone (``order``, a plain shuffle
    by default), cut into global batches, each
    cut into the ranks' shares in rank order (so the shares put together are the batch one
    process sees)."""

    def __init__(
        self,
        count: int,
        config: TrainingConfig,
        rank: int,
        steps_per_epoch: int,
        order: Callable[[torch.Generator], torch.Tensor] | None = None,
    ) -> None:
        self.count = count
        self.order = order or (lambda generator: torch.randperm(count, generator=generator))
        """An epoch's order of the samples, drawn with that epoch's generator."""
        self.config = config
        self.rank = rank
        self.steps_per_epoch = steps_per_epoch
        self._order: tuple[int, torch.Tensor] | None = None
        """The data order of the latest epoch asked for: computed once per epoch, not per step."""

    def __call__(self, step: int) -> torch.Tensor:
        config, rank = self.config, self.rank
        epoch, within = divmod(step, self.steps_per_epoch)
        cached = self._order  # one read: the prefetch thread may replace it meanwhile
        if cached is None or cached[0] != epoch:
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            cached = (epoch, self.order(generator))
            self._order = cached
        batch = cached[1][within * config.batch_size : (within + 1) * config.batch_size]
        return batch[rank * config.per_device_batch : (rank + 1) * config.per_device_batch]


class ViewBatches:
    """This rank's views of the global batch at a step: 2 global, then any local crops."""

    def __init__(
        self,
        images: StoredImages | FrameImages,
        config: TrainingConfig,
        preset: Preset,
        runtime: Runtime,
        steps_per_epoch: int,
        labels: torch.Tensor | None = None,
    ) -> None:
        self.images = images
        self.labels = labels
        """Every stored image's label (labelled folders), for ``local_labels``."""
        self.config = config
        self.recipes = view_recipes(preset, config)
        self.runtime = runtime
        self.steps_per_epoch = steps_per_epoch
        self.local_indices = RankShare(len(images), config, runtime.rank, steps_per_epoch)
        """The images (indices into the store's images) of this rank's share of a step."""

    def views(self, step: int) -> list[torch.Tensor]:
        """The step's views as float batches in [0, 1], before standardisation."""
        epoch = step // self.steps_per_epoch
        local = self.local_indices(step)
        decoded = self.images.tensors(local.tolist(), self.runtime.device)
        heights = torch.from_numpy(self.images.heights[local.numpy()])
        widths = torch.from_numpy(self.images.widths[local.numpy()])
        ids = local + epoch * len(self.images)
        return drawn_views(decoded, ids, heights, widths, self.recipes, self.config.seed)

    def __call__(self, step: int) -> list[torch.Tensor]:
        return standardised(self.views(step), self.config)

    def local_labels(self, step: int) -> torch.Tensor:
        """The labels of this rank's share of the step (for the online probe)."""
        assert self.labels is not None, "an unlabelled folder has no labels"
        return self.labels[self.local_indices(step)]

    def originals(self, step: int, count: int) -> list[np.ndarray]:
        """The first ``count`` stored images of this rank's share of the step, as pixels."""
        return [self.images.pixels(index) for index in self.local_indices(step)[:count].tolist()]


def drawn_views(
    decoded: list[torch.Tensor],
    ids: torch.Tensor,
    heights: torch.Tensor,
    widths: torch.Tensor,
    recipes: Sequence[ViewRecipe],
    seed: int,
) -> list[torch.Tensor]:
    """Every recipe's view of each decoded stored image, cut from the whole image; a view's
    random parameters depend only on the seed, the recipe and the sample's ``id``."""
    drawn = [
        (sample_view(recipe, ids, heights, widths, seed, k), recipe)
        for k, recipe in enumerate(recipes)
    ]
    return cut_views(decoded, drawn)


def standardised(views: list[torch.Tensor], config: TrainingConfig) -> list[torch.Tensor]:
    """The views standardised in place (each step's views are its own)."""
    return [normalize(view, config.mean, config.std, in_place=True) for view in views]


class ShardBatches:
    """This rank's views of the global batch at a step, streamed from WebDataset shards.

    The global batch at step s holds, for each canonical stream c in order, that stream's
    samples [s' g, (s' + 1) g) of the epoch (s' the step within the epoch, g = batch / C);
    rank r serves a contiguous block of C / world_size streams, so the ranks' shares put
    together in rank order are the global batch in the very order one process sees it. A
    sample's views are drawn from its packed index plus epoch x count, as ``ViewBatches``
    draws them from the stored image's index."""

    def __init__(
        self,
        streams: ShardStreams,
        config: TrainingConfig,
        preset: Preset,
        runtime: Runtime,
        steps_per_epoch: int,
    ) -> None:
        self.streams = streams
        self.config = config
        self.recipes = view_recipes(preset, config)
        self.runtime = runtime
        self.steps_per_epoch = steps_per_epoch
        per_rank = streams.streams // runtime.world_size
        self.served = range(runtime.rank * per_rank, (runtime.rank + 1) * per_rank)
        self.per_stream = config.batch_size // streams.streams

    def local_samples(self, step: int) -> list[Sample]:
        epoch, within = divmod(step, self.steps_per_epoch)
        start, stop = within * self.per_stream, (within + 1) * self.per_stream
        return [
            sample
            for stream in self.served
            for sample in self.streams.samples(epoch, stream, start, stop)
        ]

    def views(self, step: int) -> list[torch.Tensor]:
        """The step's views as float batches in [0, 1], before standardisation."""
        from sslcli.data.store import decode_tensors

        epoch = step // self.steps_per_epoch
        samples = self.local_samples(step)
        decoded = decode_tensors([(s.record, s.data) for s in samples], self.runtime.device)
        count = self.streams.manifest.count
        ids = torch.tensor([s.index + epoch * count for s in samples])
        heights = torch.tensor([s.record.height for s in samples])
        widths = torch.tensor([s.record.width for s in samples])
        return drawn_views(decoded, ids, heights, widths, self.recipes, self.config.seed)

    def __call__(self, step: int) -> list[torch.Tensor]:
        return standardised(self.views(step), self.config)

    def local_labels(self, step: int) -> torch.Tensor:
        """The labels packed with this rank's share of the step."""
        return torch.tensor([sample.label for sample in self.local_samples(step)])

    def originals(self, step: int, count: int) -> list[np.ndarray]:
        from sslcli.data.store import decode_pixels

        return [decode_pixels(s.record, s.data) for s in self.local_samples(step)[:count]]


SHEET_ROWS = 16
SHEET_CELL = 128
SHEET_MARGIN = 4


def view_sheet(originals: Sequence[np.ndarray], views: Sequence[torch.Tensor]) -> Image.Image:
    """One row per image: the stored image (aspect kept), then each of its views as the model
    saw it (after every op, before standardisation), each fitted into a square cell."""
    rows = min(len(originals), SHEET_ROWS)
    cell, margin = SHEET_CELL, SHEET_MARGIN
    columns = 1 + len(views)
    sheet = Image.new(
        "RGB", (margin + columns * (cell + margin), margin + rows * (cell + margin)), "white"
    )
    for row in range(rows):
        shown = [Image.fromarray(originals[row])]
        for view in views:
            pixels = view[row].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
            shown.append(Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy()))
        top = margin + row * (cell + margin)
        for column, image in enumerate(shown):
            scale = cell / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            fitted = image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.BILINEAR)
            left = margin + column * (cell + margin)
            sheet.paste(fitted, (left + (cell - size[0]) // 2, top + (cell - size[1]) // 2))
    return sheet


def write_view_sheet(batches: ViewBatches | ShardBatches, step: int, path: Path) -> None:
    """``views.png``: the first images of this process's share of ``step``, with their views,
    so the recipe can be checked by eye."""
    from sslcli.engine.atomic import atomic_file

    originals = batches.originals(step, SHEET_ROWS)
    views = [view[: len(originals)] for view in batches.views(step)]
    with atomic_file(path) as temporary:
        view_sheet(originals, views).save(temporary, format="PNG")
