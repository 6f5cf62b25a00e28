import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslcli.data import store as store_module
from sslcli.data.images import load_image
from sslcli.data.store import default_store_size, open_store, shard_path, store_root
from sslcli.errors import SSLError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    """Real photos of several shapes and modes (chelsea 451x300 RGB, coins 384x303 grey,
    cell 660x550 grey) and a 20x20 digit."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ["chelsea.jpg", "coins.jpg", "cell.jpg", "astronaut.jpg"]:
        shutil.copyfile(SAMPLE / "photos" / name, folder / name)
    shutil.copyfile(SAMPLE / "digits" / "3" / "3_000.png", folder / "three.png")
    return sorted(folder.iterdir())


def test_the_default_resolution_is_eight_sevenths_of_the_training_size() -> None:
    assert default_store_size(224) == 256
    assert default_store_size(32) == 37


def test_the_shorter_side_is_bounded_the_aspect_kept_and_nothing_enlarged(
    photos: list[Path], tmp_path: Path
) -> None:
    stored = open_store(photos, 256, tmp_path / "cache")
    assert stored.kept == list(range(len(photos))) and stored.failures == []
    shapes = {}
    for index, path in enumerate(photos):
        width, height = load_image(path).size
        got = (int(stored.heights[index]), int(stored.widths[index]))
        shapes[path.name] = got
        assert stored.pixels(index).shape == (*got, 3)
        if min(width, height) <= 256:
            assert got == (height, width)  # never enlarged
        else:
            assert min(got) == 256
            assert abs(got[0] / got[1] - height / width) < 0.01
    assert shapes["chelsea.jpg"] == (256, 385)  # 451x300: the whole photo, not a square
    assert shapes["three.png"] == (20, 20)


def test_stored_pixels_are_close_to_the_resized_original(
    photos: list[Path], tmp_path: Path
) -> None:
    """JPEG at quality 90 with 4:2:0 chroma (FFCV's ImageNet setting) of the reduced image:
    within 3 levels of 255 on average (2.8 on the astronaut's fine colour detail, 1.6 on the
    cat; 4:4:4 chroma would halve that for 25% more bytes)."""
    stored = open_store(photos, 256, tmp_path / "cache")
    for index, path in enumerate(photos):
        original = load_image(path, shortest=256)
        size = (int(stored.widths[index]), int(stored.heights[index]))
        expected = np.asarray(original.resize(size, Image.Resampling.BILINEAR), dtype=np.int16)
        difference = np.abs(stored.pixels(index).astype(np.int16) - expected).mean()
        assert difference < 3.0, (path.name, difference)


def test_tiny_images_are_kept_raw_and_exact(photos: list[Path], tmp_path: Path) -> None:
    stored = open_store(photos, 256, tmp_path / "cache")
    three = photos.index(photos[0].parent / "three.png")
    np.testing.assert_array_equal(stored.pixels(three), np.asarray(load_image(photos[three])))


def test_grey_images_take_one_channel_and_read_back_as_rgb(
    photos: list[Path], tmp_path: Path
) -> None:
    stored = open_store(photos, 256, tmp_path / "cache")
    coins = photos.index(photos[0].parent / "coins.jpg")
    record, _ = stored.encoded(coins)
    assert record.channels == 1
    chelsea = photos.index(photos[0].parent / "chelsea.jpg")
    assert stored.encoded(chelsea)[0].channels == 3
    pixels = stored.pixels(coins)
    assert pixels.shape[2] == 3
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_tensors_decode_as_pil_does(photos: list[Path], tmp_path: Path) -> None:
    """TorchCodec's libjpeg-turbo decode (threads on the CPU, nvjpeg on a GPU) against PIL's,
    raw records included."""
    stored = open_store(photos, 256, tmp_path / "cache")
    tensors = stored.tensors(range(len(photos)), torch.device("cpu"))
    for index, tensor in enumerate(tensors):
        assert tensor.dtype == torch.uint8 and tensor.shape[0] == 3
        expected = torch.from_numpy(stored.pixels(index).copy()).permute(2, 0, 1).to(torch.int16)
        assert (tensor.to(torch.int16) - expected).abs().max() <= 1


def test_a_second_open_encodes_nothing_and_reads_the_same(
    photos: list[Path], tmp_path: Path
) -> None:
    first = open_store(photos, 256, tmp_path / "cache")
    expected = [first.pixels(i) for i in range(len(photos))]
    # same byte size and time, other content: a second open that decoded anything would differ
    for path in photos:
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    calls: list[int] = []
    second = open_store(photos, 256, tmp_path / "cache", strict=True, on_progress=calls.append)
    assert calls == []
    for index, pixels in enumerate(expected):
        np.testing.assert_array_equal(second.pixels(index), pixels)


def test_adding_or_editing_files_encodes_only_those(photos: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    open_store(photos[:3], 256, cache)
    calls: list[int] = []
    open_store(photos, 256, cache, on_progress=calls.append)
    assert calls == [1] * (len(photos) - 3)

    edited = photos[1]
    Image.open(SAMPLE / "photos" / "rocket.jpg").save(edited, format="JPEG")
    calls.clear()
    again = open_store(photos, 256, cache, on_progress=calls.append)
    assert calls == [1]
    height, width = again.pixels(photos.index(edited)).shape[:2]
    assert height == 256 and abs(width / height - 640 / 427) < 0.01  # the rocket, 427x640


def test_a_different_resolution_is_a_different_store(photos: list[Path], tmp_path: Path) -> None:
    small = open_store(photos, 64, tmp_path / "cache")
    large = open_store(photos, 256, tmp_path / "cache")
    assert small.root != large.root == store_root(tmp_path / "cache", 256)
    assert min(small.pixels(0).shape[:2]) == 64


def test_an_interrupted_build_goes_on_where_it_stopped(
    photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after three images, with commits every two: the two committed stay, the third's
    bytes (written, never committed) are cut off, and the next build encodes the rest."""
    monkeypatch.setattr(store_module, "COMMIT_EVERY", 2)
    cache = tmp_path / "cache"

    def interrupt_at_three(_: int, seen: list[int] = []) -> None:  # noqa: B006
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        open_store(photos, 256, cache, on_progress=interrupt_at_three)
    calls: list[int] = []
    resumed = open_store(photos, 256, cache, on_progress=calls.append)
    assert calls == [1] * (len(photos) - 2)
    fresh = open_store(photos, 256, tmp_path / "fresh")
    for index in range(len(photos)):
        np.testing.assert_array_equal(resumed.pixels(index), fresh.pixels(index))
    root = store_root(cache, 256)
    assert shard_path(root, 0).stat().st_size == shard_path(fresh.root, 0).stat().st_size


def _broken(folder: Path) -> list[Path]:
    truncated = folder / "a_truncated.jpg"
    truncated.write_bytes((SAMPLE / "photos" / "coffee.jpg").read_bytes()[:2000])
    notes = folder / "b_notes.png"
    notes.write_text("not a picture")
    return [truncated, notes]


def test_failures_are_listed_in_order_and_not_tried_again(
    photos: list[Path], tmp_path: Path
) -> None:
    paths = sorted([*photos, *_broken(photos[0].parent)])
    stored = open_store(paths, 256, tmp_path / "cache")
    assert [paths[i].name for i in stored.kept] == [p.name for p in photos]
    messages = [failure.message for failure in stored.failures]
    assert "a_truncated.jpg is corrupt or truncated" in messages[0]
    assert "b_notes.png is not an image" in messages[1]
    calls: list[int] = []
    again = open_store(paths, 256, tmp_path / "cache", on_progress=calls.append)
    assert calls == [] and [f.message for f in again.failures] == messages
    with pytest.raises(SSLError, match=r"a_truncated\.jpg is corrupt"):
        open_store(paths, 256, tmp_path / "cache", strict=True)


def test_every_image_failing_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(SSLError, match="none of the 2 images could be decoded") as raised:
        open_store(_broken(tmp_path / "in"), 256, tmp_path / "cache")
    assert raised.value.exit_code == 2


def test_a_damaged_index_or_shard_is_one_sentence(photos: list[Path], tmp_path: Path) -> None:
    stored = open_store(photos, 256, tmp_path / "cache")
    os.truncate(shard_path(stored.root, 0), 100)
    with pytest.raises(SSLError, match=r"image store .* is damaged") as raised:
        open_store(photos, 256, tmp_path / "cache").pixels(len(photos) - 1)
    assert "delete" in raised.value.hint
    (stored.root / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(SSLError, match=r"index .* is damaged"):
        open_store(photos, 256, tmp_path / "cache")


def test_a_full_disk_keeps_the_store_as_it_was(
    photos: list[Path], tmp_path: Path, small_disk
) -> None:
    cache = small_disk(1024)
    kept = open_store(photos[:2], 256, cache)
    expected = [kept.pixels(i) for i in range(2)]
    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    big = []
    for k in range(16):  # random pixels: about 100 KB each as JPEG, more than the disk holds
        path = noise / f"noise{k}.png"
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(path)
        big.append(path)
    with pytest.raises(SSLError, match="cannot write the image store") as raised:
        open_store(photos[:2] + big, 256, cache)
    assert "free some disk space" in raised.value.hint
    calls: list[int] = []
    again = open_store(photos[:2], 256, cache, strict=True, on_progress=calls.append)
    assert calls == []
    for index, pixels in enumerate(expected):
        np.testing.assert_array_equal(again.pixels(index), pixels)


def test_the_index_records_path_size_and_time(photos: list[Path], tmp_path: Path) -> None:
    stored = open_store(photos, 256, tmp_path / "cache")
    with sqlite3.connect(stored.root / "index.sqlite") as index:
        rows = index.execute("SELECT path, bytes, mtime_ns FROM images ORDER BY path").fetchall()
    assert rows == sorted(
        (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in photos
    )


def test_a_link_to_a_stored_file_or_folder_is_the_same_image(
    photos: list[Path], tmp_path: Path
) -> None:
    """The index is keyed by the resolved path: a link to a file, or a path through a linked
    folder, finds the image the store already holds."""
    open_store(photos, 256, tmp_path / "cache")
    (tmp_path / "link.jpg").symlink_to(photos[0])
    (tmp_path / "linked").symlink_to(photos[0].parent, target_is_directory=True)
    calls: list[int] = []
    linked = [tmp_path / "link.jpg", tmp_path / "linked" / photos[1].name]
    stored = open_store(linked, 256, tmp_path / "cache", on_progress=calls.append)
    assert calls == [] and stored.kept == [0, 1]
