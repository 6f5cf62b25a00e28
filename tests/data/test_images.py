import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslcli.data import images
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
    with pytest.raises(SSLError, match="too large: 300x200 pixels, more than the limit of 50,000"):
        load_image(path, max_pixels=50_000)


def test_our_limits_apply_not_pils_process_wide_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "image.png"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # PIL's error above 40,000
    assert load_image(path).size == (300, 200)
    assert Image.MAX_IMAGE_PIXELS == 20_000  # lifted while the header was read, then restored


RENDER = (16000, 10534)  # 168 MP, more than MAX_PIXELS
RENDER_COLOUR = (90, 120, 200)


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 16000 x 10534 baseline JPEG of one colour: 2.6 MB on disk, 0.7 s to write."""
    path = tmp_path_factory.mktemp("render") / "render.jpg"
    Image.new("RGB", RENDER, RENDER_COLOUR).save(path, quality=90)
    return path


def test_a_very_large_jpeg_is_decoded_reduced_when_a_bounded_size_is_needed(
    render: Path,
) -> None:
    loaded = load_image(render, shortest=256)
    assert loaded.mode == "RGB" and loaded.size == (2000, 1317)  # 1/8 scale
    colour = np.asarray(loaded).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(colour, RENDER_COLOUR, atol=3)


def test_a_very_large_jpeg_is_too_large_to_decode_whole(render: Path) -> None:
    with pytest.raises(SSLError, match="too large: 16000x10534 pixels") as raised:
        load_image(render)
    assert "100,000,000" in str(raised.value) and raised.value.exit_code == 2
    assert "unreadable" not in str(raised.value) and "corrupt" not in str(raised.value)


def test_a_reduced_jpeg_keeps_the_limits_on_the_file_and_on_what_is_decoded(
    render: Path,
) -> None:
    with pytest.raises(SSLError, match=r"too large: .*more than the limit of 100,000,000 "):
        load_image(render, shortest=256, max_reduced_pixels=100_000_000)
    # a shorter side of 8000 px needs the full scale: 168 MP decoded is more than max_pixels
    with pytest.raises(SSLError, match=r"too large: .*16000x10534 at the smallest scale"):
        load_image(render, shortest=8000)


def _png_bomb(path: Path, side: int) -> None:
    """A real, complete ``side`` x ``side`` 1-bit PNG of zeros: ~100 KB that inflate to side^2."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = bytes(side // 8 + 1) * 1000  # filter byte 0, then the row's bits
    deflate = zlib.compressobj(6)
    data = b"".join(deflate.compress(rows) for _ in range(side // 1000)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("shortest", [None, 256])
def test_a_decompression_bomb_is_refused_as_too_large(tmp_path: Path, shortest: int | None) -> None:
    path = tmp_path / "bomb.png"
    _png_bomb(path, 30000)
    with pytest.raises(SSLError, match="too large: 30000x30000 pixels") as raised:
        load_image(path, shortest=shortest)
    message = str(raised.value)
    assert "100,000,000" in message and "decompression bomb" in message
    assert "unreadable" not in message and "corrupt" not in message


def test_a_progressive_jpeg_is_reduced_within_the_bound_on_its_coefficients(
    tmp_path: Path, photo: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "progressive.jpg"
    photo.resize((4000, 3000)).save(path, quality=90, progressive=True)
    loaded = load_image(path, shortest=200, max_pixels=1_000_000)
    assert loaded.size == (500, 375)
    # 4:2:0 holds 1.5 samples a pixel, 2 bytes each: 36 MB for 12 MP
    monkeypatch.setattr(images, "MAX_PROGRESSIVE_BYTES", 30_000_000)
    with pytest.raises(SSLError, match="too large: 4000x3000 pixels, a progressive JPEG"):
        load_image(path, shortest=200, max_pixels=1_000_000)


@pytest.mark.parametrize(("resolutions", "size"), [(6, (63, 47)), (3, (500, 375))])
def test_a_jpeg_2000_is_decoded_at_a_lower_resolution_level(
    tmp_path: Path, photo: Image.Image, resolutions: int, size: tuple[int, int]
) -> None:
    path = tmp_path / "large.jp2"
    photo.resize((2000, 1500)).save(path, num_resolutions=resolutions)
    # halved as often as the file allows (resolutions - 1 times) with a shorter side >= 40
    loaded = load_image(path, shortest=40, max_pixels=1_000_000)
    assert loaded.mode == "RGB" and loaded.size == size
    assert load_image(path, max_pixels=5_000_000).size == (2000, 1500)


def test_a_large_png_is_still_decoded_whole_within_max_pixels(tmp_path: Path) -> None:
    path = tmp_path / "large.png"
    Image.new("L", (400, 300), 7).save(path)
    with pytest.raises(SSLError, match=r"too large: 400x300 pixels.*decoded whole") as raised:
        load_image(path, shortest=16, max_pixels=100_000)
    assert "JPEG" in raised.value.hint  # what to do with a real image of that size


def test_an_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "animated.gif"
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (12, 8), colour) for colour in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as written:
        assert written.n_frames == 3
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (12, 8)
    assert (np.asarray(loaded) == colours[0]).all()


def test_an_empty_file_is_one_clear_sentence(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(SSLError, match=r"empty\.jpg is empty \(0 bytes\)") as raised:
        load_image(path)
    assert raised.value.exit_code == 2


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


def test_a_folder_of_videos_alone_is_named_as_such_with_the_command_that_reads_it(
    tmp_path: Path,
) -> None:
    from tests.conftest import SAMPLE_DATA

    videos = tmp_path / "clips"
    videos.mkdir()
    for clip in sorted((SAMPLE_DATA / "videos" / "bounce").iterdir())[:2]:
        (videos / clip.name).write_bytes(clip.read_bytes())
    with pytest.raises(SSLError) as raised:
        discover_images([videos])
    assert raised.value.message == f"no images in {videos}; it holds 2 video(s)"
    assert f"train-siamese/train-latent {videos} train on their frames" in raised.value.hint
