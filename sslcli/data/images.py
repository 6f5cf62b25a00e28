"""Find image files and decode them to RGB, whatever their mode, orientation or bit depth.

Folders are walked recursively and files with other extensions are ignored (and counted).
A file named explicitly is always tried as an image. Decoding failures are reported with the
file and the reason; callers choose to skip-and-list or fail (``--strict``).

Size limits, checked on the header before anything is decoded:

- an image decoded whole has at most :data:`MAX_PIXELS` pixels (100 MP: about 400 MB, PIL
  holding 4 bytes a colour pixel). PNG, GIF, BMP, TIFF, WebP and PPM are always decoded whole.
- when the caller needs only a bounded size (``shortest``), a JPEG is decoded at 1/2, 1/4 or
  1/8 scale (libjpeg's DCT scaling) and a JPEG 2000 at a lower resolution level, so such a file
  may have up to :data:`MAX_REDUCED_PIXELS` pixels (1 GP); what is decoded still obeys
  :data:`MAX_PIXELS`.
- a progressive JPEG holds all its DCT coefficients while it decodes, whatever the scale (2
  bytes a sample: 3 bytes a pixel at 4:2:0): at most :data:`MAX_PROGRESSIVE_BYTES` (1 GiB,
  e.g. 358 MP at 4:2:0).

Anything larger is refused as "too large", naming its size and the limit: a decompression bomb
(a 30000 x 30000 PNG of zeros is 100 KB on disk and 900 MB decoded) cannot fill the memory.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, UnidentifiedImageError
from PIL.Jpeg2KImagePlugin import Jpeg2KImageFile

from sslcli.errors import SSLError, usage_error

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
MAX_PIXELS = 100_000_000
"""The most pixels decoded at once: a whole image, or what a reduced decode produces."""
MAX_REDUCED_PIXELS = 1_000_000_000
"""The most pixels of a JPEG or JPEG 2000 decoded reduced (``load_image(..., shortest=...)``)."""
MAX_PROGRESSIVE_BYTES = 1 << 30
"""The most memory a progressive JPEG's coefficients may take while it decodes (any scale)."""
_OPEN_LOCK = threading.Lock()


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
        files = sorted(_visible_files(path), key=lambda p: p.parts)  # as Path sorts, faster
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not images:
            from sslcli.data.video import is_video  # the video module reads images too

            videos = sum(is_video(p) for p in files)
            raise usage_error(
                f"no images in {path}" + (f"; it holds {videos} video(s)" if videos else ""),
                f"train-siamese/train-latent {path} train on their frames (train-latent "
                "--pairs future on their continuations); here give images"
                if videos
                else f"looked for {', '.join(sorted(IMAGE_EXTENSIONS))} in it and its sub-folders",
            )
        found.images.extend(images)
        found.ignored.extend(p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS)
    return found


def holds_images(root: Path) -> bool:
    """Whether the folder ``root`` holds an image file (stops at the first)."""
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in _visible_files(root))


def _visible_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` whose path below it has no part starting with ".": one
    ``scandir`` per folder (file types from the directory entries, no stat per file for
    regular files), following links to folders as ``Path.rglob`` does."""
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    folders.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)


def load_image(
    path: Path,
    max_pixels: int = MAX_PIXELS,
    shortest: int | None = None,
    *,
    max_reduced_pixels: int = MAX_REDUCED_PIXELS,
) -> Image.Image:
    """Decode ``path`` to an upright 8-bit RGB image, or raise a clear :class:`SSLError`.

    ``shortest``: the caller will shrink the image until its shorter side is this long, so a
    JPEG may be decoded at 1/2, 1/4 or 1/8 scale (the decoder's DCT scaling: several times
    faster) and a JPEG 2000 at a lower resolution level, as long as its shorter side stays at
    least ``shortest``; such files may then have up to ``max_reduced_pixels`` pixels. A file
    of several frames (animated GIF, PNG or WebP, multi-page TIFF) gives its first frame.
    """
    if path.is_dir():
        raise usage_error(f"{path} is a folder, not an image file", "name an image file")
    try:
        if path.stat().st_size == 0:
            raise usage_error(f"{path} is empty (0 bytes)", "copy or export the file again")
        with _open_unchecked(path) as image:
            image.seek(0)  # the first frame, explicitly: PIL opens there, nothing seeks further
            _check_and_reduce(path, image, max_pixels, shortest, max_reduced_pixels)
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as error:  # PIL's own limit, checked by some decoders
        raise usage_error(f"{path} is too large: {error}", _BOMB_HINT) from None
    except UnidentifiedImageError:
        raise usage_error(f"{path} is not an image PIL can read", "is it an image file?") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise usage_error(
            f"{path} is corrupt or truncated: {error}", "re-export the file"
        ) from None


def _open_unchecked(path: Path) -> ImageFile.ImageFile:
    """``Image.open`` without PIL's pixel limit: :func:`_check_and_reduce` applies ours.

    PIL's limit (``Image.MAX_IMAGE_PIXELS``) is process-wide; it is lifted under a lock, and
    only while the header is read, so that concurrent loads always restore it (an
    ``Image.open`` elsewhere in the process during those microseconds goes unchecked).
    """
    with _OPEN_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


_BOMB_HINT = "it may be a decompression bomb; downscale it if it is a real image"


def _check_and_reduce(
    path: Path, image: ImageFile.ImageFile, max_pixels: int, shortest: int | None, max_reduced: int
) -> None:
    """Refuse ``image`` if it is too large, else set its decoder to the smallest useful scale."""
    width, height = image.size
    pixels = width * height
    jpeg = isinstance(image, JpegImagePlugin.JpegImageFile)
    if jpeg and image.info.get("progressive"):
        needed = _coefficient_bytes(image)
        if needed > MAX_PROGRESSIVE_BYTES:
            raise usage_error(
                f"{path} is too large: {width}x{height} pixels, a progressive JPEG whose "
                f"decoder would hold {needed / 2**20:,.0f} MiB of coefficients, more than "
                f"the limit of {MAX_PROGRESSIVE_BYTES / 2**20:,.0f} MiB",
                "save it again as a baseline (not progressive) JPEG, or downscale it",
            )
    reducible = shortest is not None and (jpeg or isinstance(image, Jpeg2KImageFile))
    if not reducible:
        if pixels > max_pixels:
            hint = _BOMB_HINT
            if shortest is not None:
                hint = (
                    "it may be a decompression bomb; if it is a real image, downscale it or "
                    f"save it as a JPEG, which is decoded reduced up to {max_reduced:,} pixels"
                )
            raise _too_large(path, width, height, max_pixels, "for an image decoded whole", hint)
        return
    assert shortest is not None
    if pixels > max(max_pixels, max_reduced):
        limit = max(max_pixels, max_reduced)
        raise _too_large(path, width, height, limit, "even decoded reduced", _BOMB_HINT)
    if jpeg:
        scale = shortest / min(width, height)
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
        decoded = image.size
    else:
        assert isinstance(image, Jpeg2KImageFile)
        levels = _j2k_levels(path)
        factor = 0
        while factor < levels and min(_j2k_size(image.size, factor + 1)) >= shortest:
            factor += 1
        image.reduce = factor
        decoded = _j2k_size(image.size, factor)
    if decoded[0] * decoded[1] > max_pixels:
        raise usage_error(
            f"{path} is too large: {width}x{height} pixels, still {decoded[0]}x{decoded[1]} at "
            f"the smallest scale that keeps its shorter side at least {shortest} px, more than "
            f"the limit of {max_pixels:,}",
            "downscale it",
        )


def _coefficient_bytes(image: JpegImagePlugin.JpegImageFile) -> int:
    """What libjpeg holds for a progressive JPEG: 2 bytes a DCT coefficient of every component."""
    h_max = max((layer[1] for layer in image.layer), default=1)
    v_max = max((layer[2] for layer in image.layer), default=1)
    width, height = image.size
    samples = sum(-(-width * h // h_max) * -(-height * v // v_max) for _, h, v, _ in image.layer)
    return 2 * samples


def _j2k_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """The size PIL gives a JPEG 2000 decoded with ``reduce = factor`` (halved ``factor`` times)."""
    power = 1 << factor
    return ((size[0] + power // 2) // power, (size[1] + power // 2) // power)


def _j2k_levels(path: Path) -> int:
    """How many times a JPEG 2000 can be halved on decoding (its COD marker's decomposition
    levels); 0 where the main header cannot be read, which decodes it whole."""
    with path.open("rb") as file:
        header = file.read(1 << 16)
    if header.startswith(b"\xff\x4f"):  # a bare codestream
        position = 2
    elif (box := header.find(b"jp2c\xff\x4f")) >= 0:  # a JP2 file: its codestream box
        position = box + 6
    else:
        return 0
    # after SOC, marker segments: 2 bytes of marker, 2 of length (which counts itself), data
    while position + 10 <= len(header):
        marker = header[position : position + 2]
        if marker == b"\xff\x52":  # COD: Lcod 2, Scod 1, order 1, layers 2, MCT 1, levels 1
            return header[position + 9]
        if marker == b"\xff\x90" or marker[:1] != b"\xff":  # SOT: the main header ended
            return 0
        position += 2 + int.from_bytes(header[position + 2 : position + 4], "big")
    return 0


def _too_large(
    path: Path, width: int, height: int, limit: int, context: str, hint: str = _BOMB_HINT
) -> SSLError:
    return usage_error(
        f"{path} is too large: {width}x{height} pixels, more than the limit of {limit:,} {context}",
        hint,
    )


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
