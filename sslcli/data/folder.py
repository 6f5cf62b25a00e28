"""A folder of images, labelled by first-level sub-folder when it is laid out that way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslcli.data.images import discover_images


@dataclass
class ImageFolder:
    paths: list[Path]
    labels: list[int] | None
    """Index into ``classes`` for each path, or None for unlabelled data."""
    classes: list[str]


def scan_image_folder(root: Path) -> ImageFolder:
    """Every image under ``root``, with labels when the folder is one sub-folder per class.

    The data counts as labelled only if every image lies inside a first-level sub-folder and
    there are at least two of them: images directly in ``root`` or a single sub-folder mean
    unlabelled data, since guessing a class layout there would invent labels.
    """
    paths = discover_images([root]).images
    parts = [path.relative_to(root).parts for path in paths]
    if not all(len(part) >= 2 for part in parts):
        return ImageFolder(paths=paths, labels=None, classes=[])
    classes = sorted({part[0] for part in parts})
    if len(classes) < 2:
        return ImageFolder(paths=paths, labels=None, classes=[])
    index = {name: label for label, name in enumerate(classes)}
    return ImageFolder(paths=paths, labels=[index[part[0]] for part in parts], classes=classes)
