import shutil
from pathlib import Path

import pytest

from sslcli.data.folder import scan_image_folder
from sslcli.errors import SSLError

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def test_class_sub_folders_give_labels() -> None:
    folder = scan_image_folder(SAMPLE / "digits")
    assert folder.classes == [str(digit) for digit in range(10)]
    assert folder.labels is not None and len(folder.labels) == len(folder.paths)
    three = folder.paths.index(SAMPLE / "digits" / "3" / "3_000.png")
    assert folder.labels[three] == 3
    assert all(
        folder.classes[label] == path.parent.name
        for path, label in zip(folder.paths, folder.labels, strict=True)
    )
    assert folder.paths == sorted(folder.paths)


def test_a_flat_folder_is_unlabelled() -> None:
    folder = scan_image_folder(SAMPLE / "photos")
    assert folder.labels is None and folder.classes == []
    assert len(folder.paths) == 15


def test_images_at_top_level_and_in_sub_folders_are_unlabelled(tmp_path: Path) -> None:
    _copy(SAMPLE / "photos" / "coins.jpg", tmp_path / "coins.jpg")
    _copy(SAMPLE / "digits" / "1" / "1_000.png", tmp_path / "a" / "one.png")
    _copy(SAMPLE / "digits" / "2" / "2_000.png", tmp_path / "b" / "two.png")
    folder = scan_image_folder(tmp_path)
    assert folder.labels is None and folder.classes == []
    assert len(folder.paths) == 3


def test_a_single_sub_folder_is_unlabelled(tmp_path: Path) -> None:
    _copy(SAMPLE / "digits" / "1" / "1_000.png", tmp_path / "only" / "one.png")
    _copy(SAMPLE / "digits" / "1" / "1_001.png", tmp_path / "only" / "deeper" / "two.png")
    folder = scan_image_folder(tmp_path)
    assert folder.labels is None and folder.classes == []


def test_nested_images_take_their_first_level_folder_and_other_files_are_ignored(
    tmp_path: Path,
) -> None:
    _copy(SAMPLE / "digits" / "1" / "1_000.png", tmp_path / "cat" / "deep" / "x.png")
    _copy(SAMPLE / "digits" / "2" / "2_000.png", tmp_path / "dog" / "y.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    folder = scan_image_folder(tmp_path)
    assert folder.classes == ["cat", "dog"]
    assert folder.labels == [0, 1]
    assert [path.name for path in folder.paths] == ["x.png", "y.png"]


def test_missing_or_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="does not exist") as raised:
        scan_image_folder(tmp_path / "nowhere")
    assert raised.value.exit_code == 2
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(SSLError, match="no images"):
        scan_image_folder(tmp_path)
