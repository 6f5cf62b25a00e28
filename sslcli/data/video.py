"""Videos as frames sampled at a fixed rate, each video decoded once and kept memory-mapped.

A video becomes ``Frames``: frame k is what the video shows at k / fps seconds from its first
frame, whatever its own frame rate (nearest preceding source frame: a 30 fps source at 10 fps
keeps every third frame, a 5 fps source at 10 fps shows each frame twice). Each kept frame is
converted once, straight from the decoder's YUV to RGB at ``size`` x ``size`` by FFmpeg's
swscale (the whole frame squashed into a square, not centre-cropped: what comes next in a
video can enter from any edge, so no edge is cut off), or with ``keep_aspect`` at its own
aspect, the shorter side bounded by ``size`` and never enlarged (as the image store keeps
images, for views cut from frames: ``FrameImages``). Source frames that are not kept are
decoded (the codec needs them) but never converted.

Decoding uses PyAV, not torchcodec (already a dependency): torchcodec's video decoder loads
the system's FFmpeg libraries (``libtorchcodec_core`` fails to load where they are missing,
as on this project's machines), while PyAV's wheels bundle their own FFmpeg.

``decoded_videos`` decodes each video once: its frames are kept as one uint8 ``.npy`` per
(resolved path, byte size, modification time, fps, size, aspect, format version) under
``cache_dir / "videos-v1"``, so an edited video is decoded again and an unchanged one is
read back memory-mapped, costing neither decode time nor memory until its frames are read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sslcli.data.store import file_keys
from sslcli.data.threads import ordered_map
from sslcli.engine.atomic import atomic_file
from sslcli.errors import SSLError, usage_error

if TYPE_CHECKING:
    import av  # imported where videos are decoded: ``is_video`` alone needs no FFmpeg
    import torch

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".avi", ".mkv", ".mov")
CACHE_FOLDER = "videos-v1"
_FORMAT_VERSION = 1
"""Part of each cache file's key: bump it when the stored frames change for the same video,
fps and size (and the folder name with it when the layout changes)."""
_REENCODE_HINT = (
    "re-encode it, e.g. ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4, or remove it"
)


def is_video(path: Path) -> bool:
    """Whether ``path`` is named as a video (by its suffix, in any case)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def scan_videos(root: Path) -> list[Path]:
    """``root`` itself if it is a file, else every video file under it (sub-folders too, hidden
    ones skipped), sorted by path below ``root`` so the order is the same on every machine."""
    if not root.exists():
        raise usage_error(f"{root} does not exist", "check the path")
    if root.is_file():
        if not is_video(root):
            raise usage_error(
                f"{root} is not a video file",
                f"name a file ending in {', '.join(VIDEO_SUFFIXES)}, or a folder of them",
            )
        return [root]
    found = list(_video_files(root))
    if not found:
        raise usage_error(
            f"no video files in {root}",
            f"looked for {', '.join(VIDEO_SUFFIXES)} in it and its sub-folders",
        )
    return sorted(found, key=lambda path: path.relative_to(root).parts)


def _video_files(root: Path) -> Iterator[Path]:
    """The video files under the folder ``root`` (hidden ones skipped), in no set order."""
    for path in root.rglob("*"):
        hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
        if is_video(path) and not hidden and path.is_file():
            yield path


def holds_videos(root: Path) -> bool:
    """Whether the folder ``root`` holds a video file (stops at the first)."""
    return any(True for _ in _video_files(root))


@dataclass(frozen=True)
class Frames:
    """One video's frames at a fixed rate."""

    pixels: np.ndarray
    """(T, height, width, 3) uint8 (height = width = size unless decoded with
    ``keep_aspect``); frame k is shown at k / fps seconds from the video's start.
    Memory-mapped read-only when it comes from the cache."""
    fps: float
    """The sampling rate asked for (not the video's own frame rate)."""
    path: Path

    @property
    def duration(self) -> float:
        """Seconds covered: T frames of 1 / fps each."""
        return len(self.pixels) / self.fps

    def index_at(self, seconds: float) -> int:
        """The frame shown at ``seconds`` from the start (to the nearest sampled frame)."""
        index = round(seconds * self.fps)
        last = len(self.pixels) - 1
        if not 0 <= index <= last:
            raise usage_error(
                f"{seconds:g} s is outside {self.path}, which is {self.duration:g} s long "
                f"(frames at 0-{last / self.fps:g} s at {self.fps:g} fps)",
                f"give a time from 0 to {last / self.fps:g} s",
            )
        return index


def _reason(error: BaseException) -> str:
    """FFmpeg's words for ``error``, short: "invalid data found when processing input"."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    text = str(text).strip().splitlines()[0]
    return text[:1].lower() + text[1:]


def _unreadable(path: Path, reason: str) -> SSLError:
    return usage_error(f"{path} is not a video sslcli can read: {reason}", _REENCODE_HINT)


def _open(path: Path) -> av.container.InputContainer:
    """``path`` opened for reading, or a usage error saying why it cannot be."""
    import av

    if not path.is_file():
        if not path.exists():
            raise usage_error(f"{path} does not exist", "check the path")
        raise usage_error(f"{path} is not a file", "name a video file")
    if path.stat().st_size == 0:
        raise _unreadable(path, "the file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as error:
        raise _unreadable(path, _reason(error)) from None


def _no_video_stream(path: Path, container: av.container.InputContainer) -> SSLError:
    kinds = sorted({stream.type for stream in container.streams})
    what = f"only {' and '.join(kinds)}" if kinds else "no streams at all"
    return usage_error(
        f"{path} has no video stream ({what})",
        "give a file with a video track, or remove this one",
    )


def _interpolation(stream: av.video.stream.VideoStream, size: int) -> str:
    """Area averaging when shrinking (no aliasing of fine detail), bilinear when enlarging."""
    shrinking = stream.width >= size and stream.height >= size
    return "AREA" if shrinking else "BILINEAR"


def _frame_shape(width: int, height: int, size: int, keep_aspect: bool) -> tuple[int, int]:
    """(height, width) of the frames decoded from a ``width`` x ``height`` video: a square of
    ``size``, or with ``keep_aspect`` its own aspect with the shorter side at most ``size``."""
    if not keep_aspect:
        return size, size
    scale = min(1.0, size / min(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


_TIE = 1e-6
"""Seconds: timestamps this close count as equal (they are rationals read as floats)."""


def _sampled(
    decoded: Iterator[av.VideoFrame], fps: float, half_period: float
) -> Iterator[av.VideoFrame]:
    """Frame k for k = 0, 1, ...: the last decoded frame whose time (from the first frame's)
    is before k / fps + ``half_period``, so timestamps a little off the grid (29.97 against
    30 fps) do not shift frames; a frame exactly half a period late is not taken early. The
    same source frame repeats when ``fps`` is above the video's rate. Frames go on while
    k / fps is before the last frame's end (its time plus a period), so a 4 s video gives
    4 * fps frames. A frame without a timestamp is taken to follow the previous one by a
    period."""
    tolerance = max(half_period - _TIE, _TIE)
    origin: float | None = None
    previous: av.VideoFrame | None = None
    previous_time = 0.0
    index = 0
    for frame in decoded:
        if frame.time is None:
            time = previous_time + 2 * half_period if previous is not None else 0.0
        else:
            if origin is None:
                origin = frame.time
            time = max(frame.time - origin, previous_time)  # never backwards
        while previous is not None and time > index / fps + tolerance:
            yield previous
            index += 1
        previous, previous_time = frame, time
    end = previous_time + 2 * half_period - _TIE if half_period else previous_time + _TIE
    while previous is not None and index / fps < end:
        yield previous
        index += 1


def _half_period(stream: av.video.stream.VideoStream) -> float:
    """Half the video's frame period in seconds (0 when the container does not say its rate)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or Fraction(rate) <= 0:
        return 0.0
    return 0.5 / float(rate)


def decode_video(path: Path, fps: float, size: int, keep_aspect: bool = False) -> Frames:
    """``path``'s frames sampled at ``fps``, each ``size`` x ``size`` RGB, or at the video's
    aspect with the shorter side at most ``size`` (``keep_aspect``; see the module).

    Raises a usage error, one sentence naming the file, when it cannot be opened or decoded,
    has no video stream, or has one in which no frame decodes.
    """
    import av

    if not (fps > 0 and math.isfinite(fps)):
        raise usage_error(f"the frame rate must be above 0, got {fps:g}")
    if size < 1:
        raise usage_error(f"the frame size must be at least 1 px, got {size}")
    path = Path(path)
    container = _open(path)
    with container:
        if not container.streams.video:
            raise _no_video_stream(path, container)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        half_period = _half_period(stream)
        height, width = _frame_shape(stream.width, stream.height, size, keep_aspect)
        interpolation = _interpolation(stream, min(height, width))
        frames: list[np.ndarray] = []
        converted: tuple[av.VideoFrame, np.ndarray] | None = None
        decoded = 0

        def source_frames() -> Iterator[av.VideoFrame]:
            """Demuxing errors say the file is damaged; decoding errors before any frame, that
            the stream is."""
            nonlocal decoded
            try:
                packets = container.demux(stream)
                for packet in packets:
                    try:
                        for frame in packet.decode():
                            decoded += 1
                            yield frame
                    except (av.FFmpegError, ValueError) as error:
                        if decoded == 0:
                            raise _no_frame(path, _reason(error)) from None
                        raise
            except SSLError:
                raise
            except (av.FFmpegError, OSError, ValueError, EOFError) as error:
                where = f" after {decoded} frames" if decoded else ""
                raise _unreadable(path, f"{_reason(error)}{where}") from None

        for frame in _sampled(source_frames(), fps, half_period):
            if converted is None or converted[0] is not frame:
                pixels = frame.to_ndarray(
                    format="rgb24", width=width, height=height, interpolation=interpolation
                )
                converted = (frame, pixels)
            frames.append(converted[1])
    if not frames:
        raise _no_frame(path, "")
    return Frames(pixels=np.stack(frames), fps=float(fps), path=path)


def _no_frame(path: Path, reason: str) -> SSLError:
    said = f": {reason}" if reason else ""
    return usage_error(
        f"{path} has a video stream but no frame in it decodes{said}", _REENCODE_HINT
    )


def decoded_videos(
    paths: Sequence[Path],
    fps: float,
    size: int,
    cache_dir: Path,
    on_progress: Callable[[int], None] | None = None,
    keep_aspect: bool = False,
) -> tuple[list[Frames], list[int], list[SSLError]]:
    """Every video in ``paths`` at ``fps`` and ``size`` (``keep_aspect`` as ``decode_video``
    has it), each decoded only the first time.

    Returns (frames of the videos that decoded, their indices into ``paths``, the errors of
    those that did not, in order). Failures are not cached: a video that fails is tried again
    next time (it may have been fixed or finished copying). Videos decode on one thread each
    (PyAV releases the GIL while FFmpeg works). ``on_progress(1)`` follows each video, read
    from the cache or decoded; a damaged cache file is decoded again.
    """
    keys = file_keys(paths)
    folder = cache_dir / CACHE_FOLDER

    def one(index: int) -> Frames | SSLError:
        path = Path(paths[index])
        name = _cache_key(keys[index], fps, size, keep_aspect)
        cache_file = folder / f"{name}-{size}px{'-aspect' if keep_aspect else ''}.npy"
        cached = _read_cache(cache_file, path, fps, size, keep_aspect)
        if cached is not None:
            return cached
        try:
            frames = decode_video(path, fps, size, keep_aspect)
        except SSLError as error:
            return error
        try:
            with atomic_file(cache_file) as temporary, temporary.open("wb") as handle:
                np.save(handle, frames.pixels, allow_pickle=False)
        except OSError as error:
            raise usage_error(
                f"cannot write the video cache in {folder}: {error}",
                "free some disk space or set SSLCLI_CACHE_DIR to a writable folder",
            ) from None
        return _read_cache(cache_file, path, fps, size, keep_aspect) or frames

    videos: list[Frames] = []
    kept: list[int] = []
    failures: list[SSLError] = []
    for index, result in enumerate(ordered_map(one, range(len(paths)))):
        if isinstance(result, SSLError):
            failures.append(result)
        else:
            videos.append(result)
            kept.append(index)
        if on_progress is not None:
            on_progress(1)
    return videos, kept, failures


def _cache_key(key: tuple[str, int, int], fps: float, size: int, keep_aspect: bool) -> str:
    """The cache file's name for one video (as ``store.file_keys`` gives it) at ``fps`` and
    ``size``; ``fps`` as a float, so 10 and 10.0 share a file. Squared frames keep the key
    they had before ``keep_aspect`` existed."""
    resolved, size_bytes, mtime = key
    rate = repr(float(fps))
    text = f"sslcli-video-v{_FORMAT_VERSION}\0{resolved}\0{size_bytes}\0{mtime}\0{rate}\0{size}"
    text += "\0aspect" if keep_aspect else ""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read_cache(
    cache_file: Path, path: Path, fps: float, size: int, keep_aspect: bool
) -> Frames | None:
    """The cached frames, memory-mapped, or None when absent or damaged (then rebuilt)."""
    try:
        pixels = np.load(cache_file, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError, ValueError):
        return None
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[3] != 3:
        return None
    height, width = pixels.shape[1:3]
    if (min(height, width) > size) if keep_aspect else (height, width) != (size, size):
        return None
    if len(pixels) == 0:
        return None
    return Frames(pixels=pixels, fps=float(fps), path=path)


class FrameImages:
    """Every frame of some videos as the images of a store (the reading side of
    ``store.StoredImages``): image i is frame i of the videos one after the other, so views
    are cut from video frames exactly as from stored images."""

    def __init__(self, videos: Sequence[Frames]) -> None:
        self.videos = list(videos)
        lengths = [len(video.pixels) for video in self.videos]
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        shapes = [video.pixels.shape[1:3] for video in self.videos]
        self.heights = np.repeat([h for h, _ in shapes], lengths).astype(np.int64)
        self.widths = np.repeat([w for _, w in shapes], lengths).astype(np.int64)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def pixels(self, index: int) -> np.ndarray:
        """Frame ``index`` as (height, width, 3) uint8 (read-only)."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} of {len(self)}")
        video = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.videos[video].pixels[index - self._starts[video]]

    def tensors(self, indices: Sequence[int], device: torch.device) -> list[torch.Tensor]:
        """Frames ``indices`` as (3, height, width) uint8 tensors on ``device``."""
        import torch

        return [
            torch.from_numpy(np.array(self.pixels(i))).permute(2, 0, 1).to(device) for i in indices
        ]
