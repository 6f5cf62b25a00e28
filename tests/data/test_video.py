"""Video decoding on real files: the sample videos, and bad files written here with PyAV."""

import importlib.util
import os
import shutil
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import av
import numpy as np
import pytest
import torch

from sslcli.data.video import (
    CACHE_FOLDER,
    FrameImages,
    Frames,
    decode_video,
    decoded_videos,
    holds_videos,
    is_video,
    scan_videos,
)
from sslcli.errors import SSLError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
VIDEOS = SAMPLE / "videos"
BOUNCE = sorted((VIDEOS / "bounce").glob("*.mp4"))


def _load_make_videos() -> ModuleType:
    """``sample_data/make_videos.py`` (a script beside the data, not a package module)."""
    spec = importlib.util.spec_from_file_location("make_videos", SAMPLE / "make_videos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_videos", module)  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


make_videos = _load_make_videos()


def _centre(frame: np.ndarray) -> np.ndarray:
    """(row, column) of a frame's bright pixels (the digit), weighted by brightness."""
    weight = frame.astype(np.float64).max(axis=2)
    weight[weight < 64] = 0
    rows, columns = np.indices(weight.shape)
    return np.array([(rows * weight).sum(), (columns * weight).sum()]) / weight.sum()


def _spec(name: str):  # -> make_videos.VideoSpec
    return next(spec for spec in make_videos.video_specs() if spec.name == name)


def _message(error: pytest.ExceptionInfo[SSLError]) -> str:
    """The error's message, checked to be one sentence (no full stop inside, one line)."""
    message = error.value.message
    assert "\n" not in message and ". " not in message, message
    assert error.value.hint
    return message


# ---------------------------------------------------------------------------- the sample set


def test_sample_set_is_what_the_readme_says() -> None:
    assert len(BOUNCE) == 8
    assert len(sorted((VIDEOS / "fork").glob("*.mp4"))) == 4
    names = sorted(path.relative_to(VIDEOS).as_posix() for path in VIDEOS.rglob("*.mp4"))
    assert names == sorted(spec.name for spec in make_videos.video_specs())
    assert sum(path.stat().st_size for path in VIDEOS.rglob("*")) < 300_000


def test_decode_a_sample_video_puts_the_digit_where_it_was_drawn() -> None:
    spec = _spec(BOUNCE[0].relative_to(VIDEOS).as_posix())
    frames = decode_video(BOUNCE[0], fps=10, size=48)
    assert frames.pixels.shape == (40, 48, 48, 3)
    assert frames.pixels.dtype == np.uint8
    assert frames.fps == 10.0
    assert frames.duration == pytest.approx(4.0)
    assert frames.path == BOUNCE[0]
    drawn = make_videos.render(spec, SAMPLE / "digits")
    for index in range(40):
        distance = np.abs(_centre(frames.pixels[index]) - _centre(drawn[index]))
        assert distance.max() < 2, (index, distance)
    # its colour survives: the brightest channel of the digit is the one drawn brightest
    bright = frames.pixels.max(axis=3) > 128
    assert np.argmax(frames.pixels[bright].mean(axis=0)) == np.argmax(spec.colour)


def test_fork_branches_are_identical_until_the_fork_then_go_opposite_ways() -> None:
    left = decode_video(VIDEOS / "fork" / "0_000_left.mp4", fps=10, size=48).pixels
    right = decode_video(VIDEOS / "fork" / "0_000_right.mp4", fps=10, size=48).pixels
    assert np.array_equal(left[:20], right[:20])
    assert _centre(left[0])[0] > _centre(left[20])[0] + 10  # it rose
    assert _centre(left[-1])[1] < _centre(left[20])[1] - 10  # then went left
    assert _centre(right[-1])[1] > _centre(right[20])[1] + 10  # or right


def test_whole_frame_is_squashed_not_cropped() -> None:
    """At another size the digit is where it was, scaled: nothing is cut off the edges."""
    big = decode_video(BOUNCE[1], fps=10, size=48).pixels
    small = decode_video(BOUNCE[1], fps=10, size=24).pixels
    assert small.shape == (40, 24, 24, 3)
    for index in (0, 13, 39):
        assert np.abs(_centre(small[index]) * 2 - _centre(big[index])).max() < 2


def _wide_video(path: Path, width: int = 64, height: int = 32, frames: int = 10) -> None:
    """A ``width`` x ``height`` video at 10 fps: left half dark, right half bright, so a
    squashed or cropped frame is told from one at its own aspect."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0", "threads": "1"}
        for _ in range(frames):
            pixels = np.full((height, width, 3), 30, np.uint8)
            pixels[:, width // 2 :] = 220
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))


def test_keep_aspect_bounds_the_shorter_side_keeps_the_aspect_and_never_enlarges(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wide.mp4"
    _wide_video(path)
    assert decode_video(path, 10, 16).pixels.shape == (10, 16, 16, 3)  # squashed
    halved = decode_video(path, 10, 16, keep_aspect=True).pixels
    assert halved.shape == (10, 16, 32, 3)
    # the whole frame at half the size: the dark half on the left, the bright on the right
    assert halved[:, :, :14].max() < 60 and halved[:, :, 18:].min() > 190
    assert decode_video(path, 10, 100, keep_aspect=True).pixels.shape == (10, 32, 64, 3)
    # the cache keeps the two apart, and reads each back as it was decoded
    cache = tmp_path / "cache"
    for keep_aspect, shape in ((True, (16, 32)), (False, (16, 16)), (True, (16, 32))):
        videos, _, _ = decoded_videos([path], 10, 16, cache, keep_aspect=keep_aspect)
        assert videos[0].pixels.shape[1:3] == shape
    assert len(list((cache / CACHE_FOLDER).glob("*.npy"))) == 2


def test_frame_images_are_every_frame_of_every_video_one_after_the_other(
    tmp_path: Path,
) -> None:
    wide = tmp_path / "wide.mp4"
    _wide_video(wide, frames=6)
    videos = [decode_video(BOUNCE[0], 10, 24, True), decode_video(wide, 10, 24, True)]
    images = FrameImages(videos)
    assert len(images) == 40 + 6
    assert images.heights.tolist() == [24] * 46
    assert images.widths.tolist() == [24] * 40 + [48] * 6
    for index, (video, frame) in {0: (0, 0), 39: (0, 39), 40: (1, 0), 45: (1, 5)}.items():
        assert np.array_equal(images.pixels(index), videos[video].pixels[frame])
    tensors = images.tensors([39, 40], torch.device("cpu"))
    assert [tuple(t.shape) for t in tensors] == [(3, 24, 24), (3, 24, 48)]
    assert tensors[1].dtype == torch.uint8
    assert np.array_equal(tensors[1].permute(1, 2, 0).numpy(), videos[1].pixels[0])
    with pytest.raises(IndexError):
        images.pixels(46)


def test_holds_videos_looks_past_hidden_files(tmp_path: Path) -> None:
    (tmp_path / ".hidden").mkdir()
    shutil.copy(BOUNCE[0], tmp_path / ".hidden" / "a.mp4")
    (tmp_path / "notes.txt").write_text("no videos here")
    assert not holds_videos(tmp_path)
    shutil.copy(BOUNCE[0], tmp_path / "b.mp4")
    assert holds_videos(tmp_path)


def test_sampling_at_5_fps_keeps_every_second_frame() -> None:
    full = decode_video(BOUNCE[2], fps=10, size=32)
    half = decode_video(BOUNCE[2], fps=5, size=32)
    assert half.pixels.shape == (20, 32, 32, 3)
    assert half.fps == 5.0 and half.duration == pytest.approx(4.0)
    assert np.array_equal(half.pixels, full.pixels[::2])


def test_sampling_above_the_video_rate_repeats_frames() -> None:
    full = decode_video(BOUNCE[2], fps=10, size=16)
    double = decode_video(BOUNCE[2], fps=20, size=16)
    assert len(double.pixels) == 80
    assert np.array_equal(double.pixels[::2], full.pixels)
    assert np.array_equal(double.pixels[1::2], full.pixels)


def test_sampling_a_29_97_fps_video_at_10_fps_keeps_the_nearest_preceding_frames(
    tmp_path: Path,
) -> None:
    """Source frame i is grey level 4 i; at 10 fps frame k is the last source frame before
    k / 10 s plus half a source period (so 0, 3, 6, 9, ... though 30000/1001 is not 30)."""
    path = tmp_path / "ntsc.mp4"
    rate = Fraction(30000, 1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0", "threads": "1"}
        for index in range(60):
            grey = np.full((16, 16, 3), 4 * index, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(grey, format="rgb24")))
        container.mux(stream.encode(None))
    frames = decode_video(path, fps=10, size=16)  # as decoded: greys compare exactly
    assert len(frames.pixels) == 21  # 60 frames of 1001/30000 s: 2.002 s
    with av.open(str(path)) as container:  # each source frame's grey, as it decodes
        greys = np.array([f.to_ndarray(format="rgb24").mean() for f in container.decode(video=0)])
    sources = [int(np.abs(greys - frame.mean()).argmin()) for frame in frames.pixels]
    period = 1 / rate
    expected = [min(int(Fraction(k, 10) / period + Fraction(1, 2)), 59) for k in range(21)]
    assert sources == expected
    assert sources[:4] == [0, 3, 6, 9]


def test_index_at() -> None:
    frames = Frames(pixels=np.zeros((40, 4, 4, 3), np.uint8), fps=10.0, path=Path("v.mp4"))
    assert frames.index_at(0) == 0
    assert frames.index_at(1.04) == 10
    assert frames.index_at(3.9) == 39
    with pytest.raises(SSLError) as error:
        frames.index_at(4.5)
    message = _message(error)
    assert "v.mp4" in message and "4 s long" in message
    with pytest.raises(SSLError):
        frames.index_at(-0.2)


# ---------------------------------------------------------------------------- scanning


def test_scan_videos_of_a_folder_a_file_and_an_empty_folder(tmp_path: Path) -> None:
    found = scan_videos(VIDEOS)
    assert [path.relative_to(VIDEOS).as_posix() for path in found] == sorted(
        path.relative_to(VIDEOS).as_posix() for path in VIDEOS.rglob("*.mp4")
    )
    assert scan_videos(BOUNCE[0]) == [BOUNCE[0]]
    assert is_video(Path("A.MKV")) and not is_video(Path("a.png"))

    (tmp_path / "notes.txt").write_text("no videos here")
    (tmp_path / ".hidden").mkdir()
    shutil.copy(BOUNCE[0], tmp_path / ".hidden" / "clip.mp4")
    with pytest.raises(SSLError) as error:
        scan_videos(tmp_path)
    message = _message(error)
    assert str(tmp_path) in message
    assert ".mp4" in error.value.hint and ".webm" in error.value.hint
    with pytest.raises(SSLError, match="does not exist"):
        scan_videos(tmp_path / "missing")


# ---------------------------------------------------------------------------- the cache


def test_decoded_videos_caches_each_video_once(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    paths = [folder / "a.mp4", folder / "b.mp4"]
    shutil.copy(BOUNCE[0], paths[0])
    shutil.copy(BOUNCE[1], paths[1])
    cache = tmp_path / "cache"
    progress: list[int] = []

    first, kept, failures = decoded_videos(paths, 10, 32, cache, on_progress=progress.append)
    assert kept == [0, 1] and failures == [] and progress == [1, 1]
    stored = sorted((cache / CACHE_FOLDER).glob("*.npy"))
    assert len(stored) == 2
    assert np.array_equal(first[0].pixels, decode_video(paths[0], 10, 32).pixels)

    mtimes = [path.stat().st_mtime_ns for path in stored]
    second, kept, _ = decoded_videos(paths, 10, 32, cache)
    assert kept == [0, 1]
    assert [path.stat().st_mtime_ns for path in stored] == mtimes  # read, not rewritten
    assert isinstance(second[0].pixels, np.memmap)  # read back memory-mapped
    assert np.array_equal(second[0].pixels, first[0].pixels)
    assert second[1].path == paths[1]

    # an edited video (another video in its place) is decoded again
    shutil.copy(BOUNCE[2], paths[0])
    os.utime(paths[0], ns=(mtimes[0] + 10**9, mtimes[0] + 10**9))
    third, _, _ = decoded_videos(paths, 10, 32, cache)
    assert np.array_equal(third[0].pixels, decode_video(BOUNCE[2], 10, 32).pixels)
    assert len(list((cache / CACHE_FOLDER).glob("*.npy"))) == 3

    # another rate or size is another cache file
    fifth, _, _ = decoded_videos(paths[:1], 5, 32, cache)
    assert len(fifth[0].pixels) == 20


def test_decoded_videos_skips_failures_without_caching_them(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    paths = [BOUNCE[0], bad, BOUNCE[1]]
    cache = tmp_path / "cache"
    videos, kept, failures = decoded_videos(paths, 10, 16, cache)
    assert kept == [0, 2] and len(videos) == 2
    assert len(failures) == 1 and "bad.mp4" in failures[0].message
    assert len(list((cache / CACHE_FOLDER).glob("*.npy"))) == 2


def test_a_damaged_cache_file_is_decoded_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    decoded_videos([BOUNCE[0]], 10, 16, cache)
    (stored,) = (cache / CACHE_FOLDER).glob("*.npy")
    stored.write_bytes(stored.read_bytes()[:100])
    videos, kept, _ = decoded_videos([BOUNCE[0]], 10, 16, cache)
    assert kept == [0] and videos[0].pixels.shape == (40, 16, 16, 3)


# ---------------------------------------------------------------------------- bad files


def _decode_error(path: Path) -> str:
    with pytest.raises(SSLError) as error:
        decode_video(path, fps=10, size=16)
    message = _message(error)
    assert str(path) in message
    return message


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert (
        _decode_error(path) == f"{path} is not a video sslcli can read: the file is empty (0 bytes)"
    )


def test_random_bytes_and_a_truncated_mp4(tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    assert _decode_error(noise).startswith(f"{noise} is not a video sslcli can read: ")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(BOUNCE[0].read_bytes()[:300])
    assert _decode_error(truncated).startswith(f"{truncated} is not a video sslcli can read: ")


def test_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "tone.mkv"
    rate = 44100
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mp2", rate=rate, layout="mono")
        tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 16000
        frame = av.AudioFrame.from_ndarray(tone.astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert _decode_error(path) == f"{path} has no video stream (only audio)"


def test_video_stream_whose_packets_are_garbage(tmp_path: Path) -> None:
    """A container with a real video stream whose packets do not decode to any frame (a
    stream with no packets at all cannot be written: FFmpeg then finds no stream, or none to
    read)."""
    path = tmp_path / "garbage.mkv"
    rng = np.random.default_rng(1)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for index in range(10):
            packet = av.Packet(rng.bytes(300))
            packet.stream = stream
            packet.time_base = Fraction(1, 10)
            packet.pts = packet.dts = index
            container.mux(packet)
    message = _decode_error(path)
    assert message.startswith(f"{path} has a video stream but no frame in it decodes")


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    assert _decode_error(tmp_path / "gone.mp4") == f"{tmp_path / 'gone.mp4'} does not exist"
    with pytest.raises(SSLError, match="frame rate"):
        decode_video(BOUNCE[0], fps=0, size=16)
