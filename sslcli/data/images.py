"""Find image files and decode them to RGB, whatever their mode, orientation or bit depth.

Folders are walked recursively and files with other extensions are ignored (and counted).
A file named explicitly is always tried as an image. Decoding failures are reported with the
file and the reason; callers choose to skip-and-list or fail (``--strict``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from sslcli.errors import SSLError, usage_error

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
MAX_PIXELS = 100_000_000
"""Larger images are refused: a decompression bomb can fill the memory of the machine."""


@dataclass
class Discovery:
    images: list[Path]
    ignored: list[Path] = field(default_factory=list)
    """Files inside given folders that do not have an image extension."""


def discover_images(inputs: Sequence[Path]) -> Discovery:
    """Image files under ``inputs`` (files or folders), in a stable sorted order."""
    if not inputs:
        raise usage_error("no input given", "name image files or folders")
    found = Discovery(images=[])
    for path in inputs:
        if not path.exists():
            raise usage_error(f"{path} does not exist", "check the path")
        if path.is_file():
            found.images.append(path)
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not images:
            raise usage_error(
                f"no images in {path}",
                f"looked for {', '.join(sorted(IMAGE_EXTENSIONS))} in it and its sub-folders",
            )
        found.images.extend(images)
        found.ignored.extend(p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS)
    return found


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def load_image(
    path: Path, max_pixels: int = MAX_PIXELS, shortest: int | None = None
) -> Image.Image:
    """Decode ``path`` to an upright 8-bit RGB image, or raise a clear :class:`SSLError`.

    ``shortest``: the caller will shrink the image until its shorter side is this long, so a
    JPEG may be decoded at 1/2, 1/4 or 1/8 scale (the decoder's DCT scaling: several times
    faster) as long as its shorter side stays at least ``shortest``.
    """
    if path.is_dir():
        raise usage_error(f"{path} is a folder, not an image file", "name an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise _too_large(path, width, height, max_pixels)
                if shortest is not None:
                    scale = shortest / min(width, height)
                    image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
                image.load()
                return to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(path, *_header_size(path), max_pixels) from None
    except UnidentifiedImageError:
        raise usage_error(f"{path} is not an image PIL can read", "is it an image file?") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise usage_error(
            f"{path} is corrupt or truncated: {error}", "re-export the file"
        ) from None


def _too_large(path: Path, width: int, height: int, max_pixels: int) -> SSLError:
    return usage_error(
        f"{path} is {width}x{height} pixels, more than the limit of {max_pixels:,}",
        "it may be a decompression bomb; downscale it if it is a real image",
    )


def _header_size(path: Path) -> tuple[int, int]:
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            return image.size
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode: 16-bit greys scaled, other ranges stretched, alpha on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _rescale_to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _rescale_to_8bit(image: Image.Image) -> Image.Image:
    import numpy as np

    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if image.mode != "F" and low >= 0 and high <= 65535:
        scaled = values / 257.0  # 16-bit data (PIL opens 16-bit PNGs as "I" or "I;16")
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
