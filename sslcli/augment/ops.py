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


def adjust_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shifts`` (fractions of a turn, in [-0.5, 0.5]) through HSV."""
    hue, saturation, value = _rgb_to_hsv(images)
    hue = torch.remainder(hue + _per_sample(shifts, images).squeeze(1), 1.0)
    return _hsv_to_rgb(hue, saturation, value)


def _rgb_to_hsv(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    red, green, _ = images.unbind(dim=1)
    minimum, maximum = torch.aminmax(images, dim=1)
    grey = maximum == minimum
    ones = torch.ones_like(maximum)
    saturation = (maximum - minimum) / torch.where(grey, ones, maximum)
    chroma = torch.where(grey, ones, maximum - minimum)
    red_c, green_c, blue_c = ((maximum.unsqueeze(1) - images) / chroma.unsqueeze(1)).unbind(dim=1)
    # The largest channel decides the hue formula; ties go to red, then green (as PIL).
    hue = torch.where(
        maximum == red,
        blue_c - green_c,
        torch.where(maximum == green, 2.0 + red_c - blue_c, 4.0 + green_c - red_c),
    )
    hue = torch.where(grey, torch.zeros_like(hue), hue)
    return torch.fmod(hue / 6.0 + 1.0, 1.0), saturation, maximum


# For each of the six hue sectors, which of (v, p, q, t) goes to red, green and blue.
_SECTOR_CHANNELS = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    sector = torch.floor(hue * 6.0)
    fraction = hue * 6.0 - sector
    p = (value * (1.0 - saturation)).clamp(0, 1)
    q = (value * (1.0 - saturation * fraction)).clamp(0, 1)
    t = (value * (1.0 - saturation * (1.0 - fraction))).clamp(0, 1)
    vpqt = torch.stack((value, p, q, t), dim=1)
    table = torch.tensor(_SECTOR_CHANNELS, dtype=torch.long, device=hue.device)
    select = table[:, sector.to(torch.long) % 6].movedim(0, 1)  # (N, 3, H, W)
    return vpqt.gather(1, select)


def to_grayscale(images: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Grey (repeated to 3 channels) where ``chosen``; unchanged elsewhere."""
    return torch.where(chosen.reshape(-1, 1, 1, 1), grayscale(images).expand_as(images), images)


def solarize(images: torch.Tensor, chosen: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    inverted = torch.where(images >= threshold, 1.0 - images, images)
    return torch.where(chosen.reshape(-1, 1, 1, 1), inverted, images)


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur, one sigma per sample, reflect padding (as torchvision)."""
    count, channels, height, width = images.shape
    half = (kernel_size - 1) / 2
    offsets = torch.linspace(-half, half, kernel_size, device=images.device, dtype=images.dtype)
    sigma = sigmas.to(images.dtype).reshape(-1, 1)
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
) -> torch.Tensor:
    """Crop ``boxes`` (top, left, height, width in pixels), mirror where ``flips``, and resize
    to ``size`` x ``size``, in one bilinear resampling step.

    ``images`` may be padded beyond each sample's real size: boxes address real pixels only.
    """
    count, _, padded_height, padded_width = images.shape
    top, left, height, width = boxes.to(images.dtype).unbind(dim=1)
    scale_x = width / padded_width
    scale_y = height / padded_height
    theta = torch.zeros(count, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = torch.where(flips, -scale_x, scale_x)
    theta[:, 0, 2] = (2 * left + width) / padded_width - 1
    theta[:, 1, 1] = scale_y
    theta[:, 1, 2] = (2 * top + height) / padded_height - 1
    grid = F.affine_grid(theta, [count, 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
