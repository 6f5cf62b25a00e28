"""Video decoding: sslcli's ``decode_video`` against PyAV's plain loop, at several lengths.

The videos are synthetic, written here: 1280x720 at 30 fps (H.264, libx264, CRF 23, preset
veryfast, yuv420p), a smooth random colour texture panning 3-5 px a frame under a drifting
gradient, with per-frame grain of +-6 levels, so the encoder has real motion and detail to code.
They are not camera footage; real videos of the same size cost about as much to decode per
frame, but their bit rates (and so decode times) vary more.

For each length (default 2, 5 and 10 s; cost against data size), frames/s of the source video
(30 a second of video) for:

- plain: the library's loop, ``for frame in container.decode(video=0): arr =
  frame.to_ndarray(format="rgb24")``, keeping every 3rd array (30 -> 10 fps) and resizing
  each kept one with PIL (bilinear) to 224x224;
- plain + AUTO: the same with ``stream.thread_type = "AUTO"`` (frame threading), to show how
  much of ours' speed is that one setting;
- ours, cold: ``decode_video(path, fps=10, size=224)`` (no cache involved);
- ours, cached: ``decoded_videos`` a second time (the frames read back from the cache, all
  pixels touched; the file was just written, so it is read from the page cache).

One run (best of ``--repeats``, default 1), in one process; ratio = ours cold / plain.

Run: PYTHONPATH=. python benchmarks/video_decode.py [--work DIR] [--lengths 2,5,10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from sslcli.data.video import decode_video, decoded_videos

WIDTH, HEIGHT = 1280, 720
SOURCE_FPS = 30
FPS = 10
SIZE = 224


def make_video(path: Path, seconds: float, seed: int = 0) -> int:
    """A synthetic ``seconds`` s 1280x720 30 fps H.264 video; returns its frame count."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (HEIGHT // 4, WIDTH // 4, 3), dtype=np.uint8)
    texture = np.asarray(
        Image.fromarray(small).resize((WIDTH * 2, HEIGHT * 2), Image.Resampling.BICUBIC),
        dtype=np.int16,
    )
    rows = np.linspace(-40, 40, HEIGHT, dtype=np.float32)[:, None, None]
    columns = np.linspace(-40, 40, WIDTH, dtype=np.float32)[None, :, None]
    frames = round(seconds * SOURCE_FPS)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(SOURCE_FPS))
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for index in range(frames):
            top = (3 * index) % HEIGHT
            left = (5 * index) % WIDTH
            window = texture[top : top + HEIGHT, left : left + WIDTH]
            phase = index / SOURCE_FPS
            gradient = rows * np.cos(phase) + columns * np.sin(phase)
            grain = rng.integers(-6, 7, (HEIGHT, WIDTH, 1), dtype=np.int16)
            pixels = np.clip(window + gradient + grain, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return frames


def plain(path: Path, threaded: bool = False) -> int:
    """PyAV's plain loop: every frame to RGB, every 3rd kept and resized with PIL."""
    kept = []
    with av.open(str(path)) as container:
        if threaded:
            container.streams.video[0].thread_type = "AUTO"
        for index, frame in enumerate(container.decode(video=0)):
            arr = frame.to_ndarray(format="rgb24")
            if index % (SOURCE_FPS // FPS) == 0:
                resized = Image.fromarray(arr).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
                kept.append(np.asarray(resized))
    return len(kept)


def best(function: Callable[[], int], repeats: int) -> tuple[float, int]:
    """The shortest of ``repeats`` wall times of ``function`` and what it returned."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, help="where the videos and cache go (default: temp)")
    parser.add_argument("--lengths", default="2,5,10", help="video lengths in seconds")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sslcli-bench-video-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, [float(length) for length in args.lengths.split(",")], args.repeats)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, lengths: list[float], repeats: int) -> None:
    print(
        f"synthetic {WIDTH}x{HEIGHT} {SOURCE_FPS} fps H.264 -> {FPS} fps at {SIZE}x{SIZE}, "
        f"{os.cpu_count()} cores, PyAV {av.__version__}; frames/s of the source video"
    )
    header = (
        f"{'video':>6} {'frames':>6} {'MB':>5} | {'plain':>7} {'plain+AUTO':>10} "
        f"{'ours cold':>9} {'ours cached':>11} | {'ours/plain':>10}"
    )
    print(header)
    print("-" * len(header))
    for length in lengths:
        path = work / f"synthetic-{length:g}s.mp4"
        if not path.exists():
            make_video(path, length)
        with av.open(str(path)) as container:
            frames = container.streams.video[0].frames or round(length * SOURCE_FPS)
        cache = work / f"cache-{length:g}s"
        shutil.rmtree(cache, ignore_errors=True)

        plain_s, plain_kept = best(lambda p=path: plain(p), repeats)
        auto_s, _ = best(lambda p=path: plain(p, threaded=True), repeats)
        cold_s, ours_kept = best(lambda p=path: len(decode_video(p, FPS, SIZE).pixels), repeats)
        assert ours_kept == plain_kept, (ours_kept, plain_kept)
        decoded_videos([path], FPS, SIZE, cache)  # fills the cache

        def cached(p: Path = path, c: Path = cache) -> int:
            videos, _, _ = decoded_videos([p], FPS, SIZE, c)
            return int(np.asarray(videos[0].pixels).sum(dtype=np.uint64) >= 0)

        cached_s, _ = best(cached, repeats)
        megabytes = path.stat().st_size / 1e6
        print(
            f"{length:5g}s {frames:6d} {megabytes:5.1f} | {frames / plain_s:7.1f} "
            f"{frames / auto_s:10.1f} {frames / cold_s:9.1f} {frames / cached_s:11.0f} | "
            f"{plain_s / cold_s:9.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
