from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslcli.data.cache import square_resize
from sslcli.data.images import discover_images, load_image
from sslcli.errors import SSLError

PHOTOS = Path(__file__).resolve().parents[2] / "sample_data" / "photos"


@pytest.fixture
def photo() -> Image.Image:
    with Image.open(PHOTOS / "chelsea.jpg") as image:
        return image.convert("RGB")


def test_exif_orientation_is_applied(tmp_path: Path, photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 270 degrees to display
    path = tmp_path / "rotated.jpg"
    photo.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (photo.height, photo.width)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_a_jpeg_decodes_at_a_reduced_scale_that_keeps_the_shorter_side(
    tmp_path: Path, photo: Image.Image, mode: str
) -> None:
    path = tmp_path / "large.jpg"
    photo.resize((photo.width * 2, photo.height * 2)).convert(mode).save(path, quality=95)
    full = load_image(path)
    reduced = load_image(path, shortest=64)
    assert reduced.mode == "RGB"
    assert min(reduced.size) >= 64 and reduced.width <= full.width / 7  # scaled by 1/8
    # what the cache stores: the same picture, a few grey levels apart on average
    difference = np.abs(
        square_resize(full, 64).astype(float) - square_resize(reduced, 64).astype(float)
    )
    assert difference.mean() < 4


def test_reduced_decoding_keeps_the_shorter_side_of_rotated_jpegs_and_leaves_pngs(
    tmp_path: Path, photo: Image.Image
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(tmp_path / "rotated.jpg", exif=exif)
    rotated = load_image(tmp_path / "rotated.jpg", shortest=100)
    assert rotated.width < rotated.height and min(rotated.size) >= 100
    assert min(rotated.size) < min(photo.size)
    photo.save(tmp_path / "photo.png")
    png = load_image(tmp_path / "photo.png", shortest=64)
    assert png.size == photo.size


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK"])
def test_every_mode_becomes_rgb(tmp_path: Path, photo: Image.Image, mode: str) -> None:
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    photo.convert(mode).save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == photo.size


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(path)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_greys_are_scaled_not_clipped(tmp_path: Path, photo: Image.Image) -> None:
    grey = np.asarray(photo.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
    path = tmp_path / "deep.png"
    Image.fromarray(grey).save(path)
    loaded = np.asarray(load_image(path))
    np.testing.assert_array_equal(loaded[..., 0], np.asarray(photo.convert("L")))


def test_corrupt_image_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes((PHOTOS / "chelsea.jpg").read_bytes()[:2000])
    with pytest.raises(SSLError, match="corrupt or truncated") as raised:
        load_image(path)
    assert raised.value.exit_code == 2


def test_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(SSLError, match="not an image"):
        load_image(path)


def test_a_folder_where_an_image_file_is_needed(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(path)
    with pytest.raises(SSLError, match="300x200 pixels, more than the limit of 50,000"):
        load_image(path, max_pixels=50_000)


def test_discovery_walks_folders_ignores_and_counts_other_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("a/one.jpg", "a/b/two.PNG", ".hidden/three.jpg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a" / "readme.txt").write_text("x")
    found = discover_images([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found.images] == [
        "a/b/two.PNG",
        "a/one.jpg",
    ]
    assert [p.name for p in found.ignored] == ["readme.txt"]


def test_discovery_errors(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="does not exist"):
        discover_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSLError, match="no images in"):
        discover_images([tmp_path / "empty"])
    with pytest.raises(SSLError, match="no input given"):
        discover_images([])
