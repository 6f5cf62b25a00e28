"""One view of a batch: sample per-sample parameters from a recipe, then apply them.

The op order is torchvision's SSL pipeline: random resized crop (with the rotation and the
horizontal flip, in one resampling step), colour jitter (its four ops in random order per
sample), grayscale, Gaussian blur, solarisation. Parameter distributions follow torchvision's
transforms.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from sslcli.augment import ops
from sslcli.augment.counter_random import uniforms
from sslcli.augment.recipe import ViewRecipe

CROP_ATTEMPTS = 10
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


@dataclass
class ViewParams:
    """Per-sample parameters of one view; every field has one row per sample."""

    boxes: torch.Tensor
    """(N, 4) crop top, left, height, width in source pixels."""
    flips: torch.Tensor
    angles: torch.Tensor
    """(N,) rotation in degrees, counter-clockwise."""
    jittered: torch.Tensor
    factors: torch.Tensor
    """(N, 4) brightness, contrast, saturation factors and hue shift."""
    order: torch.Tensor
    """(N, 4) the order the jitter ops run in (indices into JITTER_OPS)."""
    grayscale: torch.Tensor
    blurred: torch.Tensor
    sigmas: torch.Tensor
    solarized: torch.Tensor

    def select(self, rows: slice) -> ViewParams:
        return ViewParams(**{item.name: getattr(self, item.name)[rows] for item in fields(self)})

    @staticmethod
    def concatenate(parts: Sequence[ViewParams]) -> ViewParams:
        """One ViewParams holding the samples of ``parts`` one after the other."""
        return ViewParams(
            **{
                item.name: torch.cat([getattr(part, item.name) for part in parts])
                for item in fields(ViewParams)
            }
        )

    def record(self, index: int) -> dict[str, Any]:
        """Sample ``index``'s parameters as plain data (for --json)."""
        top, left, height, width = (int(v) for v in self.boxes[index].tolist())
        record: dict[str, Any] = {
            "crop": {"top": top, "left": left, "height": height, "width": width},
            "flip": bool(self.flips[index]),
            "rotation": round(float(self.angles[index]), 3),
            "jitter": None,
            "grayscale": bool(self.grayscale[index]),
            "blur_sigma": round(float(self.sigmas[index]), 4) if self.blurred[index] else None,
            "solarize": bool(self.solarized[index]),
        }
        if self.jittered[index]:
            factors = dict(zip(JITTER_OPS, self.factors[index].tolist(), strict=True))
            record["jitter"] = {name: round(value, 4) for name, value in factors.items()}
            record["jitter"]["order"] = [JITTER_OPS[i] for i in self.order[index].tolist()]
        return record


def _between(low: float, high: float, u: torch.Tensor) -> torch.Tensor:
    return low + (high - low) * u


def sample_crop_boxes(
    recipe: ViewRecipe, heights: torch.Tensor, widths: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """torchvision's RandomResizedCrop.get_params for every sample at once.

    ``u`` holds 4 uniforms per attempt: area, log aspect ratio, top, left.
    """
    height = heights.to(torch.float64).reshape(-1, 1)
    width = widths.to(torch.float64).reshape(-1, 1)
    u = u.reshape(-1, CROP_ATTEMPTS, 4)
    area = height * width * _between(*recipe.crop_scale, u[..., 0])
    log_low, log_high = (math.log(r) for r in recipe.crop_ratio)
    ratio = torch.exp(_between(log_low, log_high, u[..., 1]))
    crop_w = torch.round(torch.sqrt(area * ratio))
    crop_h = torch.round(torch.sqrt(area / ratio))
    fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)

    def pick(values: torch.Tensor) -> torch.Tensor:
        return values.gather(1, first).squeeze(1)

    crop_h, crop_w = pick(crop_h), pick(crop_w)
    top = torch.floor(pick(u[..., 2]) * (height.squeeze(1) - crop_h + 1))
    left = torch.floor(pick(u[..., 3]) * (width.squeeze(1) - crop_w + 1))
    boxes = torch.stack((top, left, crop_h, crop_w), dim=1)
    return torch.where(
        fits.any(dim=1, keepdim=True), boxes, _central_crops(recipe, heights, widths)
    )


def _central_crops(recipe: ViewRecipe, heights: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """torchvision's fallback when no attempt fits: the largest central crop in the ratios."""
    height, width = heights.to(torch.float64), widths.to(torch.float64)
    low, high = min(recipe.crop_ratio), max(recipe.crop_ratio)
    ratio = width / height
    crop_w = torch.where(ratio > high, torch.round(height * high), width)
    crop_h = torch.where(ratio < low, torch.round(width / low), height)
    top = torch.div(height - crop_h, 2, rounding_mode="floor")
    left = torch.div(width - crop_w, 2, rounding_mode="floor")
    return torch.stack((top, left, crop_h, crop_w), dim=1)


def sample_view(
    recipe: ViewRecipe,
    sample_ids: torch.Tensor,
    heights: torch.Tensor,
    widths: torch.Tensor,
    seed: int,
    view: int,
) -> ViewParams:
    """Draw the parameters of view number ``view`` for each sample (on the CPU)."""

    def draw(stream: int, count: int) -> torch.Tensor:
        return uniforms(seed, sample_ids, view * 8 + stream, count)

    jitter_u = draw(2, 9)
    strengths = recipe.jitter
    factor_ranges = [(max(0.0, 1 - s), 1 + s) for s in strengths[:3]]
    factor_ranges.append((-strengths[3], strengths[3]))
    factors = torch.stack(
        [_between(low, high, jitter_u[:, 1 + k]) for k, (low, high) in enumerate(factor_ranges)],
        dim=1,
    )
    other_u = draw(3, 5)
    return ViewParams(
        boxes=sample_crop_boxes(recipe, heights, widths, draw(0, 4 * CROP_ATTEMPTS)).long(),
        flips=draw(1, 1)[:, 0] < recipe.flip_prob,
        angles=_between(-recipe.rotation, recipe.rotation, draw(4, 1)[:, 0]),
        jittered=jitter_u[:, 0] < recipe.jitter_prob,
        factors=factors,
        order=jitter_u[:, 5:9].argsort(dim=1),
        grayscale=other_u[:, 0] < recipe.grayscale_prob,
        blurred=other_u[:, 1] < recipe.blur_prob,
        sigmas=_between(*recipe.blur_sigma, other_u[:, 2]),
        solarized=other_u[:, 3] < recipe.solarize_prob,
    )


_JITTER_FUNCTIONS = (
    ops.adjust_brightness,
    ops.adjust_contrast,
    ops.adjust_saturation,
    ops.adjust_hue,
)

# Parameters stay on the CPU: which samples an op touches is decided there, and only the
# indices and values it needs go to the device, without waiting for it (no synchronisation
# points, so a GPU never idles between ops).


def _to(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return tensor.to(like.device, non_blocking=True)


def _on_chosen(
    views: torch.Tensor,
    chosen: torch.Tensor,
    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    """Replace the chosen samples by ``function(samples, their CPU indices)``; skip if none."""
    index = chosen.nonzero().squeeze(1)
    if len(index):
        on_device = _to(index, views)
        views[on_device] = function(views[on_device], index)


def _jitter(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """The four colour ops, each sample in its own order (``factors``, ``order``: CPU)."""
    for position in range(len(_JITTER_FUNCTIONS)):
        for op_index, function in enumerate(_JITTER_FUNCTIONS):
            _on_chosen(
                images,
                order[:, position] == op_index,
                lambda x, i, k=op_index, f=function: f(x, _to(factors[i, k], x)),
            )
    return images


def apply_views(
    images: torch.Tensor, views: Sequence[tuple[ViewParams, ViewRecipe]]
) -> list[torch.Tensor]:
    """Apply several views' parameters to one float batch in [0, 1], on any device.

    Views of the same size go through each colour op together, so two SimCLR views cost one
    pass of launches, not two (on a GPU the ops are bound by launch overhead, not arithmetic).
    """
    results: list[torch.Tensor] = [images] * len(views)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for number, (_, recipe) in enumerate(views):
        groups[(recipe.size, recipe.blur_kernel_size)].append(number)
    for (size, kernel), members in groups.items():
        crops = torch.cat(
            [
                ops.resized_crop(
                    images,
                    _to(views[k][0].boxes, images),
                    _to(views[k][0].flips, images),
                    size,
                    _to(views[k][0].angles, images),
                )
                for k in members
            ]
        )
        _colour(crops, ViewParams.concatenate([views[k][0] for k in members]), kernel)
        for number, part in zip(members, crops.split(len(images)), strict=True):
            results[number] = part
    return results


def padded_batch(images: Sequence[torch.Tensor]) -> torch.Tensor:
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


def cut_views(
    images: Sequence[torch.Tensor], views: Sequence[tuple[ViewParams, ViewRecipe]]
) -> list[torch.Tensor]:
    """Views of uint8 images (3, H, W) that may each have their own size, as float batches in
    [0, 1]: each crop is cut from its whole image and resized with antialiasing (torchvision's
    RandomResizedCrop on tensors), then the colour ops run on the batch of crops. On the CPU
    only the crops become float; elsewhere the images form one float batch that every view
    is resized from at once (``ops.matrix_resized_crops_uint8``). Views that rotate take the
    padded-batch path (one resampling step for crop, rotation and flip; no antialiasing)."""
    if any(recipe.rotation for _, recipe in views):
        return apply_views(padded_batch(images).float().div_(255), views)
    results: list[torch.Tensor] = [torch.empty(0)] * len(views)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for number, (_, recipe) in enumerate(views):
        groups[(recipe.size, recipe.blur_kernel_size)].append(number)
    # off the CPU one resize per crop costs more in kernel launches than in work: the crops
    # come from one padded float batch by matrix products there
    padded = None if images[0].device.type == "cpu" else padded_batch(images).float()

    def resized(params: ViewParams, size: int) -> torch.Tensor:
        if padded is None:
            return ops.resized_crops_uint8(list(images), params.boxes, params.flips, size)
        return ops.matrix_resized_crops_uint8(padded, params.boxes, params.flips, size)

    for (size, kernel), members in groups.items():
        crops = torch.cat([resized(views[k][0], size) for k in members])
        crops = crops.float().div_(255)
        _colour(crops, ViewParams.concatenate([views[k][0] for k in members]), kernel)
        for number, part in zip(members, crops.split(len(images)), strict=True):
            results[number] = part
    return results


CPU_CHUNK_BYTES = 16 * 2**20
"""On the CPU the colour ops run over chunks of about this size, which stay in cache: on one
core, 224 px views run 1.8x faster in chunks of 32 than in one batch of 128."""


def _colour(views: torch.Tensor, params: ViewParams, blur_kernel: int) -> None:
    """Jitter, grayscale, blur and solarise the chosen samples, in place."""
    per_sample = views[0].numel() * views.element_size()
    step = len(views) if views.is_cuda else max(1, CPU_CHUNK_BYTES // per_sample)
    for start in range(0, len(views), step):
        chunk, part = views[start : start + step], params.select(slice(start, start + step))
        _on_chosen(chunk, part.jittered, lambda x, i, p=part: _jitter(x, p.factors[i], p.order[i]))
        _on_chosen(chunk, part.grayscale, lambda x, i: ops.to_grayscale(x))
        _on_chosen(
            chunk, part.blurred, lambda x, i, p=part: ops.gaussian_blur(x, p.sigmas[i], blur_kernel)
        )
        _on_chosen(chunk, part.solarized, lambda x, i: ops.solarize(x))
