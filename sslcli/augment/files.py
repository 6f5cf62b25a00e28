"""Augment image files: decode, batch by size, draw views on a device, write them and a grid.

A view's randomness depends only on the seed, the image's position in the sorted input list
and the view number, so the same seed gives the same files for any batch size (and the same
parameters on any device).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sslcli.augment.presets import Preset
from sslcli.augment.views import apply_views, sample_view
from sslcli.data.images import Discovery, load_image
from sslcli.engine.atomic import atomic_file, write_failure
from sslcli.errors import SSLError, runtime_error, usage_error

GRID_ROWS = 16


@dataclass
class Written:
    source: Path
    view: int
    path: Path
    params: dict[str, Any]


@dataclass
class AugmentReport:
    written: list[Written] = field(default_factory=list)
    """Every view of the run, those kept from an earlier run included."""
    kept: int = 0
    """Views that existed already with the same pixels: left as they were."""
    skipped: list[SSLError] = field(default_factory=list)
    grid: Path | None = None


def output_paths(
    discovery: Discovery, roots: Sequence[Path], out: Path, views: int
) -> list[list[Path]]:
    """Where each image's views go: the input tree mirrored under ``out``, ``NAME_viewK.png``.

    Two inputs with the same name but different extensions keep the extension in the name.
    """
    relatives = [_relative(path, roots) for path in discovery.images]
    stems = [rel.with_suffix("") for rel in relatives]
    counts: dict[Path, int] = defaultdict(int)
    for stem in stems:
        counts[stem] += 1
    return [
        [
            out
            / stem.parent
            / f"{stem.name}{'_' + rel.suffix[1:] if counts[stem] > 1 else ''}_view{k}.png"
            for k in range(views)
        ]
        for rel, stem in zip(relatives, stems, strict=True)
    ]


def _relative(path: Path, roots: Sequence[Path]) -> Path:
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return path.relative_to(root)
    return Path(path.name)


def augment_files(
    images: Sequence[Path],
    targets: Sequence[Sequence[Path]],
    preset: Preset,
    views: int,
    seed: int,
    device: torch.device,
    batch_size: int,
    strict: bool,
    overwrite: bool,
    on_batch: Callable[[int], None],
) -> AugmentReport:
    """Write ``views`` views of every image; ``on_batch(n)`` is told of each n images done.

    A view whose file exists already is kept when it holds the same pixels (a rerun after an
    interruption or a full disk finishes the job) and refused otherwise, unless ``overwrite``.
    """
    report = AugmentReport()
    decoded: dict[tuple[int, int], list[tuple[int, Image.Image]]] = defaultdict(list)
    for index, path in enumerate(images):
        try:
            image = load_image(path)
        except SSLError as failure:
            if strict:
                raise
            report.skipped.append(failure)
            on_batch(1)
            continue
        decoded[(image.height, image.width)].append((index, image))
    for group in decoded.values():
        for start in range(0, len(group), batch_size):
            batch = group[start : start + batch_size]
            _augment_batch(batch, images, targets, preset, views, seed, device, overwrite, report)
            on_batch(len(batch))
    report.written.sort(key=lambda item: (str(item.source), item.view))
    return report


def _augment_batch(
    batch: list[tuple[int, Image.Image]],
    images: Sequence[Path],
    targets: Sequence[Sequence[Path]],
    preset: Preset,
    views: int,
    seed: int,
    device: torch.device,
    overwrite: bool,
    report: AugmentReport,
) -> None:
    ids = torch.tensor([index for index, _ in batch])
    pixels = torch.from_numpy(np.stack([np.asarray(image) for _, image in batch]))
    pixels = pixels.to(device).permute(0, 3, 1, 2).float().div_(255)
    heights = torch.full_like(ids, pixels.shape[2])
    widths = torch.full_like(ids, pixels.shape[3])
    drawn = [
        (sample_view(preset.recipe(view), ids, heights, widths, seed, view), preset.recipe(view))
        for view in range(views)
    ]
    for view, (out, (params, _)) in enumerate(zip(apply_views(pixels, drawn), drawn, strict=True)):
        out = out.mul_(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()
        for row, (index, _) in enumerate(batch):
            target = targets[index][view]
            try:
                report.kept += not save_png(Image.fromarray(out[row].numpy()), target, overwrite)
            except OSError as error:
                raise _stopped_writing(target, error, report) from None
            report.written.append(Written(images[index], view, target, params.record(row)))


def _stopped_writing(target: Path, error: OSError, report: AugmentReport) -> SSLError:
    """A write failed (a full disk, say): what was done, and that a rerun finishes it."""
    written = len(report.written) - report.kept
    return runtime_error(
        f"{write_failure(target, error)}; {written} views written and {report.kept} kept "
        "before it (every file written is whole)",
        "free space, then run the same command again: it keeps the views already written "
        "and writes the rest",
    )


def save_png(image: Image.Image, target: Path, overwrite: bool) -> bool:
    """Write ``image`` to ``target`` (atomically); False when the file held it already."""
    if target.exists() and not overwrite:
        if _same_pixels(image, target):
            return False
        raise usage_error(
            f"{target} exists with other content (another seed or recipe wrote it)",
            "pass --overwrite to replace it, or choose another --out",
        )
    with atomic_file(target) as temporary:
        image.save(temporary, format="PNG")
    return True


def _same_pixels(image: Image.Image, path: Path) -> bool:
    try:
        with Image.open(path) as existing:
            return existing.mode == image.mode and np.array_equal(
                np.asarray(existing), np.asarray(image)
            )
    except OSError:  # unreadable: not the same
        return False


def save_contact_sheet(
    report: AugmentReport, views: int, cell: int, path: Path, overwrite: bool
) -> None:
    """:func:`contact_sheet` written to ``path``; a failed write is one sentence."""
    try:
        save_png(contact_sheet(report, views, cell), path, overwrite)
    except OSError as error:
        raise runtime_error(
            f"{write_failure(path, error)}; the views are all written",
            "free space, then run the same command again to write the contact sheet",
        ) from None


def contact_sheet(
    report: AugmentReport, views: int, cell: int, rows: int = GRID_ROWS
) -> Image.Image:
    """Each original (fitted in a cell) beside its views, one source per row."""
    by_source: dict[Path, list[Written]] = defaultdict(list)
    for item in report.written:
        by_source[item.source].append(item)
    sources = list(by_source)[:rows]
    margin = 4
    sheet = Image.new(
        "RGB",
        ((views + 1) * (cell + margin) + margin, len(sources) * (cell + margin) + margin),
        "white",
    )
    for row, source in enumerate(sources):
        top = margin + row * (cell + margin)
        original = load_image(source)
        original.thumbnail((cell, cell))
        sheet.paste(
            original, (margin + (cell - original.width) // 2, top + (cell - original.height) // 2)
        )
        for item in by_source[source]:
            with Image.open(item.path) as view_image:
                fitted = view_image.convert("RGB").resize((cell, cell))
            sheet.paste(fitted, (margin + (item.view + 1) * (cell + margin), top))
    return sheet
