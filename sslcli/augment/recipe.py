"""The distribution one view is drawn from (plain data: no torch needed to list presets)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewRecipe:
    """The distribution one view is drawn from."""

    size: int = 224
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    """Strengths of brightness, contrast, saturation and hue, as torchvision's ColorJitter."""
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.0
    rotation: float = 0.0
    """Largest rotation in degrees: each view turns about its crop's centre by an angle drawn
    uniformly from [-rotation, rotation] (corners outside the image repeat its edge pixels)."""

    @property
    def blur_kernel_size(self) -> int:
        """About a tenth of the view's side, odd (as SimCLR)."""
        return max(3, int(0.1 * self.size) // 2 * 2 + 1)
