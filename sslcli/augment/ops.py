"""Image ops on float batches (N, 3, H, W) in [0, 1], each with its own per-sample parameters.

Every op matches torchvision's functional op of the same name for the same parameter
(tests compare them); here the parameters are tensors with one value per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GREY_WEIGHTS = (0.2989, 0.587, 0.114)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape(-1, 1, 1, 1)


def _blend(images: torch.Tensor, other: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    factor = _per_sample(factors, images)
    return (factor * images + (1 - factor) * other).clamp_(0, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601-2, as torchvision), shape (N, 1, H, W)."""
    red, green, blue = images.unbind(dim=1)
    weights = _GREY_WEIGHTS
    return (weights[0] * red + weights[1] * green + weights[2] * blue).unsqueeze(1)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return (images * _per_sample(factors, images)).clamp_(0, 1)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, factors)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return _blend(images, grayscale(images), factors)


_RAMP_OFFSETS = (1.0, 2 / 3, 1 / 3)


def adjust_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shifts`` (fractions of a turn, in [-0.5, 0.5]) as in HSV space.

    A hue rotation keeps each pixel's largest and smallest channel (V and V(1-S) in HSV), so
    the result is ``min + chroma * ramp(hue)`` per channel: torchvision's HSV round trip
    without building the HSV image, in place where possible (large CPU batches are bound by
    memory traffic).
    """
    red, green, blue = images.unbind(dim=1)
    minimum, maximum = torch.aminmax(images, dim=1)
    chroma = maximum - minimum
    # hue * 6 * chroma for each largest channel; ties go to red, then green (as PIL)
    hue = torch.where(
        maximum == green, (blue - red).add_(chroma, alpha=2), (red - green).add_(chroma, alpha=4)
    )
    hue = torch.where(maximum == red, green - blue, hue)
    hue.div_(chroma.mul(6).clamp_(min=1e-12))  # grey pixels: 0 / tiny = hue 0
    hue.add_(shifts.to(images.dtype).reshape(-1, 1, 1)).remainder_(1.0)
    offsets = torch.tensor(_RAMP_OFFSETS, dtype=images.dtype, device=images.device)
    ramp = hue.unsqueeze(1).add(offsets.reshape(1, 3, 1, 1)).remainder_(1.0)
    ramp.mul_(6.0).sub_(3.0).abs_().sub_(1.0).clamp_(0.0, 1.0)
    return ramp.mul_(chroma.unsqueeze(1)).add_(minimum.unsqueeze(1))


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """Grey, repeated to 3 channels."""
    return grayscale(images).expand_as(images).contiguous()


def solarize(images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert the pixels at or above ``threshold``."""
    return torch.where(images >= threshold, 1.0 - images, images)


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur, one sigma per sample, reflect padding (as torchvision)."""
    count, channels, height, width = images.shape
    half = (kernel_size - 1) / 2
    offsets = torch.linspace(-half, half, kernel_size, device=images.device, dtype=images.dtype)
    sigma = sigmas.to(device=images.device, dtype=images.dtype).reshape(-1, 1)
    kernels = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
    pad = kernel_size // 2
    flat = images.reshape(1, count * channels, height, width)
    flat = F.pad(flat, (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernels.reshape(-1, 1, 1, kernel_size), groups=count * channels)
    flat = F.conv2d(flat, kernels.reshape(-1, 1, kernel_size, 1), groups=count * channels)
    return flat.reshape(count, channels, height, width)


def resized_crop(
    images: torch.Tensor,
    boxes: torch.Tensor,
    flips: torch.Tensor,
    size: int,
    angles: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop ``boxes`` (top, left, height, width in pixels), turn each crop counter-clockwise by
    ``angles`` (degrees) about its centre, mirror where ``flips``, and resize to ``size`` x
    ``size``, in one bilinear resampling step. Pixels a rotation brings in from outside the
    image repeat its edge (``padding_mode="border"``).

    ``images`` may be padded beyond each sample's real size: boxes address real pixels only.
    """
    count, _, padded_height, padded_width = images.shape
    top, left, height, width = boxes.to(images.dtype).unbind(dim=1)
    mirror = torch.where(flips, -1.0, 1.0).to(images.dtype)
    if angles is None:
        cos, sin = torch.ones_like(width), torch.zeros_like(width)
    else:
        radians = torch.deg2rad(angles.to(images.dtype))
        cos, sin = torch.cos(radians), torch.sin(radians)
    # Output point (x, y) in [-1, 1]^2 -> the crop's pixel offsets (mirror x w/2, y h/2) from
    # its centre, rotated in pixel space (so non-square crops stay undistorted) -> the input.
    theta = torch.empty(count, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = cos * mirror * width / padded_width
    theta[:, 0, 1] = -sin * height / padded_width
    theta[:, 0, 2] = (2 * left + width) / padded_width - 1
    theta[:, 1, 0] = sin * mirror * width / padded_height
    theta[:, 1, 1] = cos * height / padded_height
    theta[:, 1, 2] = (2 * top + height) / padded_height - 1
    grid = F.affine_grid(theta, [count, 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resized_crops_uint8(
    images: list[torch.Tensor], boxes: torch.Tensor, flips: torch.Tensor, size: int
) -> torch.Tensor:
    """Each uint8 image's box (top, left, height, width) resized to ``size`` x ``size``
    (bilinear, antialiased: torchvision's ``resized_crop`` on tensors), mirrored where
    ``flips``; (N, 3, size, size) uint8. Each image may have its own height and width, and
    only the crops are resampled: no padded batch, no float copy of the whole images. CPU
    tensors: PyTorch's uint8 kernel exists there alone (``matrix_resized_crops_uint8`` is
    the way elsewhere)."""
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    for row, (image, (top, left, height, width), flip) in enumerate(
        zip(images, boxes.tolist(), flips.tolist(), strict=True)
    ):
        crop = image[:, top : top + height, left : left + width].unsqueeze(0)
        resized = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)[0]
        out[row] = resized.flip(-1) if flip else resized
    return out


def resize_weights(
    starts: torch.Tensor, lengths: torch.Tensor, size: int, extent: int
) -> torch.Tensor:
    """(N, size, extent) float32: the weights by which PyTorch's antialiased bilinear resize
    (``F.interpolate(..., mode="bilinear", antialias=True)``, after PIL's ``ImagingResample``:
    a triangle filter widened by the scale when shrinking, each output's weights normalised)
    maps the span [start, start + length) of an axis of ``extent`` pixels to ``size`` pixels,
    one span per row of ``starts`` and ``lengths``."""
    device = starts.device
    lengths = lengths.to(torch.float32)
    scale = (lengths / size)[:, None, None]  # input pixels per output pixel
    support = scale.clamp_min(1.0)
    centre = scale * (torch.arange(size, device=device, dtype=torch.float32) + 0.5)[:, None]
    offsets = (
        torch.arange(extent, device=device, dtype=torch.float32)
        - starts.to(torch.float32)[:, None, None]
    )  # each input pixel's index from the span's start: (N, 1, extent)
    first = (centre - support + 0.5).floor().clamp_min(0)
    last = (centre + support + 0.5).floor().minimum(lengths[:, None, None])
    weights = (1 - ((offsets - centre + 0.5) / support).abs()).clamp_min(0)
    weights = weights * ((offsets >= first) & (offsets < last))
    return weights / weights.sum(dim=-1, keepdim=True)


def matrix_resized_crops_uint8(
    images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int
) -> torch.Tensor:
    """``resized_crops_uint8`` of one float batch (N, 3, H, W) holding the images (values
    0-255, e.g. ``views.padded_batch``), as two batched matrix products per call instead of
    one resize per crop: where each kernel launch costs more than its work (CUDA, thousands
    of small crops a step). Rounded to uint8, within 1 of the CPU's uint8 kernel, which
    rounds between its two passes."""
    boxes = boxes.to(images.device)
    height, width = images.shape[-2:]
    rows = resize_weights(boxes[:, 0], boxes[:, 2], size, height)  # (N, size, H)
    columns = resize_weights(boxes[:, 1], boxes[:, 3], size, width)  # (N, size, W)
    flipped = flips.to(images.device)[:, None, None]
    columns = torch.where(flipped, columns.flip(1), columns)
    resized = rows[:, None] @ images @ columns[:, None].transpose(-1, -2)
    return resized.round_().clamp_(0, 255).to(torch.uint8)
