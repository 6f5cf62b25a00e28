"""Synthetic "moving digits" videos, made from the handwritten digits in ``digits/``.

Writes two folders under ``--out`` (default: ``videos/`` beside this script):

* ``bounce/``  8 videos, each one digit bouncing off the walls of a black square: a
  different digit, start and velocity (2-3 px a frame) in each, so what comes next is
  predictable from the motion so far.
* ``fork/``  4 videos, 2 digits x 2 branches: the digit rises straight up from the bottom
  centre to the centre of the frame, then goes on diagonally up-left (``*_left.mp4``) or
  up-right (``*_right.mp4``). The two branches of a digit are identical up to the fork, so
  the past alone cannot tell which future comes: a test for models that should predict both.

Each video is 48x48 px, 10 fps, 4 s (40 frames), the digit coloured one saturated colour on
black, H.264 (libx264, yuv420p, CRF 12, so the digit stays crisp) in ``.mp4``. Everything
is drawn from a fixed seed, the RGB to YUV conversion is integer arithmetic here, and the
encoder runs on one thread, so reruns have given the same bytes (for a fixed PyAV / FFmpeg
build; see README.md for the one caveat).

Imports only numpy, pillow and PyAV (``av``), so tests can import it. Run::

    python sample_data/make_videos.py [--digits sample_data/digits] [--out sample_data/videos]
"""

from __future__ import annotations

import argparse
import colorsys
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

SEED = 20261203
CANVAS = 48
FPS = 10
FRAMES = 40
CRF = 12
"""Low enough that the digit's edges survive 4:2:0 chroma and the encoder (the files stay
around 10 KB each at this size)."""
BOUNCE_VIDEOS = 8
FORK_DIGITS = 2
BRANCHES: tuple[str, ...] = ("left", "right")
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class VideoSpec:
    """Everything that decides one sample video's frames: its name, source digit and motion."""

    name: str
    """Path under the output folder, e.g. ``bounce/3_017.mp4``."""
    digit_file: str
    """The digit PNG under ``digits/``, e.g. ``3/3_017.png``."""
    colour: tuple[int, int, int]
    kind: str
    """``"bounce"`` or ``"fork"``."""
    start: tuple[float, float] = (0.0, 0.0)
    """Bounce: the digit's top-left corner (x, y) in px at frame 0."""
    velocity: tuple[float, float] = (0.0, 0.0)
    """Bounce: (x, y) px per frame, y downward."""
    branch: str = ""
    """Fork: ``"left"`` or ``"right"``."""


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated, bright colour (full saturation and value, a random hue)."""
    red, green, blue = colorsys.hsv_to_rgb(float(rng.random()), 1.0, 1.0)
    return round(red * 255), round(green * 255), round(blue * 255)


def video_specs(seed: int = SEED) -> list[VideoSpec]:
    """The sample set: 8 bouncing videos, then 2 digits x 2 fork branches, from ``seed``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(10)
    specs = []
    for label in labels[:BOUNCE_VIDEOS]:
        index = int(rng.integers(60))
        room = CANVAS - 20
        start = (float(rng.uniform(0, room)), float(rng.uniform(0, room)))
        speed = float(rng.uniform(2.0, 3.0))
        angle = float(rng.uniform(0.15, 0.35) * np.pi + rng.integers(4) * np.pi / 2)
        velocity = (round(speed * np.cos(angle), 3), round(speed * np.sin(angle), 3))
        start = (round(start[0], 3), round(start[1], 3))
        specs.append(
            VideoSpec(
                name=f"bounce/{label}_{index:03d}.mp4",
                digit_file=f"{label}/{label}_{index:03d}.png",
                colour=_colour(rng),
                kind="bounce",
                start=start,
                velocity=velocity,
            )
        )
    for label in labels[BOUNCE_VIDEOS : BOUNCE_VIDEOS + FORK_DIGITS]:
        index = int(rng.integers(60))
        colour = _colour(rng)
        for branch in BRANCHES:
            specs.append(
                VideoSpec(
                    name=f"fork/{label}_{index:03d}_{branch}.mp4",
                    digit_file=f"{label}/{label}_{index:03d}.png",
                    colour=colour,
                    kind="fork",
                    branch=branch,
                )
            )
    return specs


def load_digit(path: Path) -> np.ndarray:
    """A digit PNG as (20, 20) uint8 grayscale."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def _rgb(digit: np.ndarray) -> np.ndarray:
    """A (h, w) grayscale digit as (h, w, 3), white; an (h, w, 3) one as it is."""
    return np.repeat(digit[..., None], 3, axis=2) if digit.ndim == 2 else digit


def _draw(digit: np.ndarray, canvas: int, x: float, y: float) -> np.ndarray:
    """One (canvas, canvas, 3) uint8 frame, the digit's top-left corner at (x, y) rounded to
    whole pixels (so the digit's shape is the same in every frame), clipped at the edges."""
    frame = np.zeros((canvas, canvas, 3), dtype=np.uint8)
    height, width = digit.shape[:2]
    left, top = round(x), round(y)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + width, canvas), min(top + height, canvas)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return frame


def _bounce(position: float, speed: float, room: float) -> tuple[float, float]:
    """One step along an axis of length ``room``, reflecting off both ends."""
    position += speed
    while position < 0 or position > room:
        if position < 0:
            position, speed = -position, -speed
        else:
            position, speed = 2 * room - position, -speed
    return position, speed


def bouncing_video(
    digit: np.ndarray,
    frames: int,
    canvas: int,
    start: tuple[float, float],
    velocity: tuple[float, float],
) -> np.ndarray:
    """(frames, canvas, canvas, 3) uint8: the digit's top-left corner starts at ``start``
    (x, y) and moves ``velocity`` px a frame, reflecting off the walls.

    ``digit`` is (h, w) grayscale (drawn white) or (h, w, 3), e.g. from ``colour_digit``.
    """
    digit = _rgb(digit)
    height, width = digit.shape[:2]
    x, y = start
    vx, vy = velocity
    video = np.empty((frames, canvas, canvas, 3), dtype=np.uint8)
    for index in range(frames):
        video[index] = _draw(digit, canvas, x, y)
        x, vx = _bounce(x, vx, canvas - width)
        y, vy = _bounce(y, vy, canvas - height)
    return video


def fork_positions(frames: int, canvas: int, digit_size: int, branch: str) -> np.ndarray:
    """(frames, 2) top-left corners (x, y) of the digit in a fork video.

    Up to the fork (frame ``frames // 2``) the digit rises from the bottom centre to the
    canvas centre; after it, it keeps the same upward speed and moves as fast sideways, to
    the left or right, reaching the top corner on the last frame.
    """
    if branch not in BRANCHES:
        raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}")
    fork = frames // 2
    centre = (canvas - digit_size) / 2
    bottom = canvas - digit_size
    rise = (bottom - centre) / fork  # px per frame upward, before and after the fork
    side = -1.0 if branch == "left" else 1.0
    positions = np.empty((frames, 2))
    for index in range(frames):
        after = max(index - fork, 0)
        positions[index] = (centre + side * rise * after, bottom - rise * index)
    return positions


def fork_video(digit: np.ndarray, frames: int, canvas: int, branch: str) -> np.ndarray:
    """(frames, canvas, canvas, 3) uint8: the digit rises straight up from the bottom centre
    and at the fork (half way, canvas centre) turns up-left (``branch="left"``) or up-right
    (``"right"``) diagonally; both branches are identical up to the fork. ``digit`` as for
    ``bouncing_video``."""
    digit = _rgb(digit)
    positions = fork_positions(frames, canvas, digit.shape[0], branch)
    return np.stack([_draw(digit, canvas, x, y) for x, y in positions])


def colour_digit(digit: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """(h, w) grayscale to (h, w, 3) uint8: white becomes ``colour``, black stays black."""
    scale = np.asarray(colour, dtype=np.float32) / 255
    return np.round(digit[..., None].astype(np.float32) * scale).astype(np.uint8)


def rgb_to_yuv420p(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB as a (H * 3 // 2, W) yuv420p plane stack: BT.601 limited range in
    the usual 8-bit integer form, chroma from the sum of each 2x2 block. Integer arithmetic
    done here, rather than FFmpeg's swscale or floating point, so no SIMD path or BLAS
    summation order can change a rounding (one run of the set through swscale gave other
    bytes for two of the videos)."""
    rgb = pixels.astype(np.int32)
    height, width, _ = rgb.shape
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = ((66 * red + 129 * green + 25 * blue + 128) >> 8) + 16
    sums = rgb.reshape(height // 2, 2, width // 2, 2, 3).sum(axis=(1, 3))
    red4, green4, blue4 = sums[..., 0], sums[..., 1], sums[..., 2]
    cb = ((-38 * red4 - 74 * green4 + 112 * blue4 + 512) >> 10) + 128
    cr = ((112 * red4 - 94 * green4 - 18 * blue4 + 512) >> 10) + 128
    planes = [np.clip(plane, 0, 255).astype(np.uint8) for plane in (luma, cb, cr)]
    chroma = np.concatenate([planes[1].reshape(-1), planes[2].reshape(-1)])
    return np.concatenate([planes[0], chroma.reshape(height // 2, width)])


def write_video(frames: np.ndarray, path: Path, fps: int = FPS) -> None:
    """(T, H, W, 3) uint8 RGB as H.264 (libx264, yuv420p, CRF 12) in ``path``'s container.

    The encoder runs on one thread: x264's output then depends only on its input and
    settings, so a rerun writes the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "medium", "threads": "1"}
        stream.codec_context.thread_count = 1
        for pixels in frames:
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(pixels), format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def render(spec: VideoSpec, digits_dir: Path) -> np.ndarray:
    """The (FRAMES, CANVAS, CANVAS, 3) uint8 frames of one sample video, before encoding."""
    digit = colour_digit(load_digit(digits_dir / spec.digit_file), spec.colour)
    if spec.kind == "bounce":
        return bouncing_video(digit, FRAMES, CANVAS, spec.start, spec.velocity)
    return fork_video(digit, FRAMES, CANVAS, spec.branch)


def make_videos(digits_dir: Path, out_dir: Path, seed: int = SEED) -> list[Path]:
    """Rewrite ``out_dir/bounce`` and ``out_dir/fork``; return the videos written, in order."""
    written = []
    for folder in ("bounce", "fork"):
        shutil.rmtree(out_dir / folder, ignore_errors=True)
    for spec in video_specs(seed):
        path = out_dir / spec.name
        write_video(render(spec, digits_dir), path)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=Path, default=HERE / "digits", help="the digits folder")
    parser.add_argument("--out", type=Path, default=HERE / "videos", help="where to write")
    args = parser.parse_args()
    paths = make_videos(args.digits, args.out)
    total = sum(path.stat().st_size for path in paths)
    print(f"videos: {len(paths)} files, {total / 1000:.1f} KB")


if __name__ == "__main__":
    main()
