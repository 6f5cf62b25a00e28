import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslcli.data.cache import decode_once, default_cache_dir, square_resize
from sslcli.data.images import load_image
from sslcli.data.store import default_store_size, encode_for_store
from sslcli.errors import SSLError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
SIZE = 32


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Real images of several shapes and modes: RGB and grey, square and not."""
    folder = tmp_path / "images"
    folder.mkdir()
    names = ["chelsea.jpg", "coins.jpg", "cell.jpg", "microaneurysms.jpg"]
    for name in names:
        shutil.copyfile(SAMPLE / "photos" / name, folder / name)
    shutil.copyfile(SAMPLE / "digits" / "3" / "3_000.png", folder / "three.png")
    return sorted(folder.iterdir())


def _stored(path: Path) -> Image.Image:
    """``path`` as the image store keeps it (reduced, then JPEG or raw), decoded again."""
    encoded = encode_for_store(path, default_store_size(SIZE))
    if encoded.raw:
        shape = (encoded.height, encoded.width, encoded.channels)
        array = np.frombuffer(encoded.data, np.uint8).reshape(shape)
        return Image.fromarray(array[..., 0] if encoded.channels == 1 else array)
    return Image.open(io.BytesIO(encoded.data))


def _expected(paths: list[Path]) -> np.ndarray:
    return np.stack([square_resize(_stored(path), SIZE) for path in paths])


def test_the_squares_are_close_to_resizing_the_original(images: list[Path], tmp_path: Path) -> None:
    """Storing (reduced decode, a shorter side of 37 px, then this resize) stays within 3.5
    levels of 255, on average, of resizing the fully decoded file; the reduced (DCT-scaled)
    decode the cache used before the store differs by 1.3 on these photos already."""
    decoded = decode_once(images, SIZE, tmp_path / "cache")
    direct = np.stack([square_resize(load_image(path), SIZE) for path in images])
    difference = np.abs(decoded.pixels.astype(np.int16) - direct.astype(np.int16))
    assert difference.mean() < 3.5, difference.mean()


def test_decodes_every_image_at_the_requested_size(images: list[Path], tmp_path: Path) -> None:
    calls: list[int] = []
    decoded = decode_once(images, SIZE, tmp_path / "cache", on_progress=calls.append)
    assert decoded.pixels.shape == (len(images), SIZE, SIZE, 3)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.kept == list(range(len(images))) and decoded.failures == []
    assert calls == [1] * len(images)
    np.testing.assert_array_equal(decoded.pixels, _expected(images))
    assert decoded.cache_file.parent == tmp_path / "cache"
    assert decoded.cache_file.name.endswith(f"-{SIZE}px.npy")
    assert decoded.cache_file.with_name(decoded.cache_file.stem + "-meta.json").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_second_call_reads_the_cache_without_decoding(images: list[Path], tmp_path: Path) -> None:
    first = decode_once(images, SIZE, tmp_path / "cache")
    expected = np.array(first.pixels)
    written = first.cache_file.stat().st_mtime_ns
    # Make the sources undecodable while keeping the size and mtime the key is made of:
    # a second call that decoded anything would fail or differ.
    for path in images:
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    calls: list[int] = []
    second = decode_once(images, SIZE, tmp_path / "cache", strict=True, on_progress=calls.append)
    assert second.cache_file == first.cache_file
    assert second.cache_file.stat().st_mtime_ns == written
    assert calls == []
    np.testing.assert_array_equal(second.pixels, expected)


def test_touching_a_file_makes_a_new_cache_file(images: list[Path], tmp_path: Path) -> None:
    first = decode_once(images, SIZE, tmp_path / "cache")
    stat = images[1].stat()
    os.utime(images[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = decode_once(images, SIZE, tmp_path / "cache")
    assert second.cache_file != first.cache_file
    assert first.cache_file.exists() and second.cache_file.exists()


def test_size_and_file_list_are_part_of_the_key(images: list[Path], tmp_path: Path) -> None:
    full = decode_once(images, SIZE, tmp_path / "cache").cache_file
    assert decode_once(images, 16, tmp_path / "cache").cache_file != full
    assert decode_once(images[1:], SIZE, tmp_path / "cache").cache_file != full


def test_the_cache_is_a_read_only_memory_map(images: list[Path], tmp_path: Path) -> None:
    decoded = decode_once(images, SIZE, tmp_path / "cache")
    assert isinstance(decoded.pixels, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        decoded.pixels[0, 0, 0, 0] = 1


def _add_broken(images: list[Path]) -> list[Path]:
    folder = images[0].parent
    truncated = folder / "a_truncated.jpg"
    truncated.write_bytes((SAMPLE / "photos" / "coffee.jpg").read_bytes()[:2000])
    not_an_image = folder / "b_notes.png"
    not_an_image.write_text("not a picture")
    return sorted([*images, truncated, not_an_image])


def test_corrupt_images_are_skipped_and_listed(images: list[Path], tmp_path: Path) -> None:
    paths = _add_broken(images)
    decoded = decode_once(paths, SIZE, tmp_path / "cache")
    broken = {paths.index(p) for p in paths if p.name.startswith(("a_", "b_"))}
    assert decoded.kept == [i for i in range(len(paths)) if i not in broken]
    assert decoded.pixels.shape == (len(images), SIZE, SIZE, 3)
    np.testing.assert_array_equal(decoded.pixels, _expected([paths[i] for i in decoded.kept]))
    messages = [failure.message for failure in decoded.failures]
    assert len(messages) == 2
    assert "a_truncated.jpg is corrupt or truncated" in messages[0]
    assert "b_notes.png is not an image" in messages[1]
    again = decode_once(paths, SIZE, tmp_path / "cache")
    assert again.kept == decoded.kept
    assert [failure.message for failure in again.failures] == messages
    assert all(failure.exit_code == 2 and failure.hint for failure in again.failures)


def test_strict_raises_on_a_corrupt_image(images: list[Path], tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="corrupt or truncated") as raised:
        decode_once(_add_broken(images), SIZE, tmp_path / "cache", strict=True)
    assert raised.value.exit_code == 2
    assert not list((tmp_path / "cache").glob("*.npy"))


def test_strict_raises_on_a_corrupt_image_also_when_the_cache_is_hit(
    images: list[Path], tmp_path: Path
) -> None:
    listed = _add_broken(images)
    assert decode_once(listed, SIZE, tmp_path / "cache").failures
    with pytest.raises(SSLError, match=r"a_truncated\.jpg is corrupt"):
        decode_once(listed, SIZE, tmp_path / "cache", strict=True)


def test_every_image_failing_is_a_usage_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((SAMPLE / "photos" / "coffee.jpg").read_bytes()[:2000])
    with pytest.raises(SSLError, match="none of the 1 images could be decoded") as raised:
        decode_once([broken], SIZE, tmp_path / "cache")
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("damage", ["truncate", "empty", "no-meta", "bad-meta"])
def test_a_damaged_cache_is_rebuilt(images: list[Path], tmp_path: Path, damage: str) -> None:
    first = decode_once(images, SIZE, tmp_path / "cache")
    expected = np.array(first.pixels)
    meta = first.cache_file.with_name(first.cache_file.stem + "-meta.json")
    if damage == "truncate":
        os.truncate(first.cache_file, first.cache_file.stat().st_size // 2)
    elif damage == "empty":
        first.cache_file.write_bytes(b"")
    elif damage == "no-meta":
        meta.unlink()
    else:
        meta.write_text('{"kept": [0]}')
    del first
    calls: list[int] = []
    rebuilt = decode_once(images, SIZE, tmp_path / "cache", on_progress=calls.append)
    assert calls == []  # rebuilt from the image store, which still holds every image
    np.testing.assert_array_equal(rebuilt.pixels, expected)


def test_square_resize_crops_the_centre_of_a_non_square_photo() -> None:
    with Image.open(SAMPLE / "photos" / "chelsea.jpg") as photo:
        wide = photo.convert("RGB")
    assert wide.size == (451, 300)
    resized = wide.resize((96, 64), Image.Resampling.BILINEAR)  # 451 * 64 / 300 = 96.2
    expected = np.asarray(resized.crop((16, 0, 80, 64)))
    np.testing.assert_array_equal(square_resize(wide, 64), expected)

    tall = wide.transpose(Image.Transpose.ROTATE_90)
    resized = tall.resize((64, 96), Image.Resampling.BILINEAR)
    expected = np.asarray(resized.crop((0, 16, 64, 80)))
    np.testing.assert_array_equal(square_resize(tall, 64), expected)


def test_square_resize_makes_rgb_from_grey() -> None:
    with Image.open(SAMPLE / "photos" / "coins.jpg") as photo:
        assert photo.mode == "L"
        out = square_resize(photo, 48)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSLCLI_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SSLCLI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "sslcli" / "images"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "sslcli" / "images"
