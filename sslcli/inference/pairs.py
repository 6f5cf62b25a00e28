"""A pairs file for ``energy --pairs``: the image pairs to score, one ``x,y`` row each.

CSV with two fields a row; a first row ``x,y`` is a header and skipped, blank rows are
skipped. A relative path is relative to the file's folder; absolute paths stay as they are.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from sslcli.errors import usage_error
from sslcli.inference.embedding import DecodedSet, decode_inputs

HEADER = ("x", "y")


@dataclass(frozen=True)
class Pair:
    x: str
    """The first image as the file writes it."""
    y: str
    x_path: Path
    y_path: Path
    file: Path
    line: int
    """The pair's line in ``file``, from 1."""


def read_pairs(path: Path) -> list[Pair]:
    """The pairs of ``path``, in file order; one sentence naming the line for a bad row."""
    if not path.exists():
        raise usage_error(f"{path} does not exist", "give a CSV file of x,y image pairs")
    if not path.is_file():
        raise usage_error(f"{path} is not a file", "give a CSV file of x,y image pairs")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise usage_error(f"{path} is not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise usage_error(f"cannot read {path}: {error}") from None
    folder = path.parent
    pairs: list[Pair] = []
    first = True
    for line, row in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [field.strip() for field in row]
        if not any(fields):
            continue
        if first and tuple(f.lower() for f in fields) == HEADER:
            first = False
            continue
        first = False
        if len(fields) != 2 or not all(fields):
            raise usage_error(
                f"{path} line {line}: expected two image paths x,y, got {row!r}",
                "one pair a row: x,y (a path relative to the file's folder, or absolute)",
            )
        x_path, y_path = (folder / field for field in fields)
        for image in (x_path, y_path):
            if not image.is_file():
                what = "is a folder" if image.is_dir() else "does not exist"
                raise usage_error(
                    f"{path} line {line}: {image} {what}",
                    "paths are relative to the pairs file's folder, or absolute",
                )
        pairs.append(Pair(fields[0], fields[1], x_path, y_path, path, line))
    if not pairs:
        raise usage_error(f"{path} holds no pairs", "write one x,y pair of image paths a row")
    return pairs


def decode_pairs(
    pairs: list[Pair], size: int, cache_dir: Path, show: bool = True
) -> tuple[DecodedSet, torch.Tensor]:
    """Decode every image of ``pairs`` once; the (P, 2) rows of each pair's x and y in the
    decoded set. An unreadable image is an error naming its line (no pair is skipped)."""
    paths = list(dict.fromkeys(path for pair in pairs for path in (pair.x_path, pair.y_path)))
    decoded = decode_inputs(paths, size, cache_dir, strict=False, show=show)
    if decoded.failures:
        kept = set(decoded.paths)
        why = dict(zip([p for p in paths if p not in kept], decoded.failures, strict=True))
        pair = next(p for p in pairs if p.x_path in why or p.y_path in why)
        failure = why[pair.x_path] if pair.x_path in why else why[pair.y_path]
        raise usage_error(f"{pair.file} line {pair.line}: {failure.message}", failure.hint)
    row = {path: index for index, path in enumerate(decoded.paths)}
    return decoded, torch.tensor([[row[p.x_path], row[p.y_path]] for p in pairs])
