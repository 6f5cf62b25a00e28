import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
PHOTOS = ["chelsea.jpg", "coffee.jpg", "camera.jpg", "rocket.jpg"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in PHOTOS[:3]:
        shutil.copy(SAMPLE / "photos" / name, folder / name)
    shutil.copy(SAMPLE / "photos" / PHOTOS[3], folder / "sub" / PHOTOS[3])
    (folder / "notes.txt").write_text("not an image")
    return folder


def _augment(*args: str) -> object:
    return runner.invoke(app, ["augment", *args, "--gpus", "0", "--size", "32"])


def test_writes_views_named_after_their_source_and_a_grid(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _augment(
        str(photos), "--out", str(out), "--grid", str(tmp_path / "grid.png"), "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(
        [f"{Path(n).stem}_view{k}.png" for n in PHOTOS[:3] for k in (0, 1)]
        + [f"sub/rocket_view{k}.png" for k in (0, 1)]
    )
    assert report["ignored_files"] == 1 and report["skipped"] == []
    first = report["views"][0]
    assert set(first["params"]) == {
        "crop",
        "flip",
        "rotation",
        "jitter",
        "grayscale",
        "blur_sigma",
        "solarize",
    }
    with Image.open(out / "chelsea_view0.png") as view:
        assert view.size == (32, 32) and view.mode == "RGB"
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (3 * 36 + 4, 4 * 36 + 4)


def test_same_seed_same_files_for_any_batch_size_other_seed_differs(
    photos: Path, tmp_path: Path
) -> None:
    def run(name: str, *extra: str) -> dict[str, bytes]:
        out = tmp_path / name
        assert _augment(str(photos), "--out", str(out), "--preset", "byol", *extra).exit_code == 0
        return {p.name: p.read_bytes() for p in out.rglob("*.png")}

    reference = run("a", "--seed", "5", "--batch-size", "1")
    assert run("b", "--seed", "5", "--batch-size", "64") == reference
    different = run("c", "--seed", "6")
    assert all(different[name] != data for name, data in reference.items())


def test_dino_writes_global_and_local_crops(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _augment(
        str(photos / "chelsea.jpg"), "--out", str(out), "--preset", "dino", "--local-size", "16"
    )
    assert result.exit_code == 0, result.output
    sizes = {}
    for path in out.glob("*.png"):
        with Image.open(path) as image:
            sizes[path.name] = image.size
    assert len(sizes) == 8
    assert sizes["chelsea_view1.png"] == (32, 32) and sizes["chelsea_view2.png"] == (16, 16)


def test_existing_files_are_not_overwritten_without_the_flag(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _augment(str(photos), "--out", str(out)).exit_code == 0
    before = (out / "chelsea_view0.png").read_bytes()
    refused = _augment(str(photos), "--out", str(out), "--seed", "9")
    assert refused.exit_code == 2 and "exists with other content" in refused.stderr
    assert (out / "chelsea_view0.png").read_bytes() == before
    assert _augment(str(photos), "--out", str(out), "--seed", "9", "--overwrite").exit_code == 0
    assert (out / "chelsea_view0.png").read_bytes() != before


def test_a_rerun_keeps_the_views_that_exist_and_writes_the_rest(
    photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert _augment(str(photos), "--out", str(out)).exit_code == 0
    kept = out / "chelsea_view0.png"
    stamp = kept.stat().st_mtime_ns
    (out / "coffee_view1.png").unlink()  # as a run that stopped before it
    again = _augment(str(photos), "--out", str(out), "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["kept"] == 7 and len(report["views"]) == 8
    assert (out / "coffee_view1.png").is_file() and kept.stat().st_mtime_ns == stamp


def test_a_full_disk_says_what_was_written_and_a_rerun_finishes(
    photos: Path, tmp_path: Path, small_disk
) -> None:
    disk = small_disk(64)
    big = ("--size", "128")  # views of about 30 KB: the disk takes two or three
    full = runner.invoke(app, ["augment", str(photos), "--out", str(disk), "--gpus", "0", *big])
    assert full.exit_code == 1, full.output
    assert not isinstance(full.exception, Exception) or isinstance(full.exception, SystemExit)
    words = " ".join(full.stderr.split())
    assert f"disk full at {disk}" in words and "views written" in words
    assert "run the same command again" in words
    written = sorted(disk.rglob("*.png"))
    assert all(Image.open(path).size == (128, 128) for path in written)  # none half-written
    subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
    again = runner.invoke(app, ["augment", str(photos), "--out", str(disk), "--gpus", "0", *big])
    assert again.exit_code == 0, again.output
    assert len(list(disk.rglob("*.png"))) == 8


def test_corrupt_images_are_skipped_and_listed_or_fatal_with_strict(
    photos: Path, tmp_path: Path
) -> None:
    (photos / "broken.jpg").write_bytes((SAMPLE / "photos" / "coffee.jpg").read_bytes()[:1500])
    result = _augment(str(photos), "--out", str(tmp_path / "a"))
    assert result.exit_code == 0
    assert "skipped" in result.stderr and "broken.jpg" in result.stderr
    assert len(list((tmp_path / "a").rglob("*.png"))) == 8
    strict = _augment(str(photos), "--out", str(tmp_path / "b"), "--strict")
    assert strict.exit_code == 2 and "broken.jpg is corrupt or truncated" in strict.stderr


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("missing", "does not exist"),
        ("empty", "no images in"),
        ("text", "not an image"),
    ],
)
def test_input_errors_are_one_clear_sentence(tmp_path: Path, setup: str, says: str) -> None:
    target = tmp_path / "input"
    if setup == "empty":
        target.mkdir()
    if setup == "text":
        target = tmp_path / "notes.png"
        target.write_text("hello")
    result = _augment(str(target), "--out", str(tmp_path / "out"), "--strict")
    assert result.exit_code == 2
    assert says in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--crop-scale", "0.5", "two numbers"),
        ("--jitter", "0.4,0.4", "one strength or"),
        ("--blur-prob", "1.5", "probability between 0 and 1"),
        ("--rotation", "-10", "largest angle from 0 to 180 degrees"),
        ("--preset", "simclrr", "did you mean simclr"),
        ("--views", "0", "--views must be 1 or more"),
    ],
)
def test_bad_options(photos: Path, tmp_path: Path, option: str, value: str, says: str) -> None:
    result = _augment(str(photos), "--out", str(tmp_path / "out"), option, value)
    assert result.exit_code == 2
    assert says in result.stderr


def test_overrides_reach_the_views(photos: Path, tmp_path: Path) -> None:
    result = _augment(
        str(photos),
        "--out",
        str(tmp_path / "out"),
        "--json",
        "--jitter-prob",
        "0",
        "--grayscale-prob",
        "1",
        "--flip-prob",
        "1",
        "--crop-scale",
        "1,1",
        "--crop-ratio",
        "1,1",
        "--rotation",
        "20",
    )
    views = json.loads(result.stdout)["views"]
    angles = [v["params"]["rotation"] for v in views]
    assert all(-20 <= angle <= 20 for angle in angles) and len(set(angles)) == len(angles)
    assert all(
        v["params"]["jitter"] is None and v["params"]["grayscale"] and v["params"]["flip"]
        for v in views
    )
    assert all(v["params"]["crop"]["height"] == v["params"]["crop"]["width"] for v in views)
