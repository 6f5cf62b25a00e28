"""The training views: cut from the whole stored image, the same in any batch, drawn as a sheet."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from sslcli.augment.presets import PRESETS, customise
from sslcli.augment.views import cut_views, padded_batch, sample_view
from sslcli.data.store import open_store
from sslcli.engine.runtime import Runtime
from sslcli.training.config import TrainingRequest, resolve_config
from sslcli.training.views import ViewBatches, view_sheet, write_view_sheet

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
CPU = Runtime(torch.device("cpu"), "fp32", 0)


def _batches(
    images: list[Path], tmp_path: Path, batch: int, store_size: int, **changes: object
) -> ViewBatches:
    request = TrainingRequest(
        data=str(tmp_path), method="simclr", backbone="tiny-cnn", size=32, small_images=None,
        preset="minimal", view_changes=dict(changes), epochs=1, batch_size=batch,
        optimizer=None, lr_per_256=None, weight_decay=None, warmup_epochs=None,
        method_options={}, seed=0, precision="fp32", knn_every=1, eval_dir=None,
        online_probe=False, checkpoint_every=0, stop_on_collapse=False, strict=False,
        cache_dir=str(tmp_path / "cache"), store_size=store_size,
    )  # fmt: skip
    config = resolve_config(request, 1)
    stored = open_store(images, store_size, tmp_path / "cache")
    preset = customise(PRESETS.create("minimal"), {"size": 32, **changes}, {})
    return ViewBatches(stored, config, preset, CPU, len(images) // batch)


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    """Photos of three shapes: chelsea 451x300 (wide), rocket 427x640 (tall), coins 384x303."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ["chelsea.jpg", "rocket.jpg", "coins.jpg"]:
        shutil.copyfile(SAMPLE / "photos" / name, folder / name)
    return sorted(folder.iterdir())


def test_a_crop_of_the_whole_area_is_the_whole_photo_not_a_centre_square(
    photos: list[Path], tmp_path: Path
) -> None:
    """Scale 1 at the photo's own aspect: torchvision's RandomResizedCrop takes all of a 4:3
    photo, sides included (a crop from a centre square would miss a quarter of it), and
    resizes it as torchvision does (bilinear, antialiased)."""
    chelsea = [photos[0], photos[0]]  # a batch needs two
    stored_side = 64  # 451x300 -> 96x64
    batches = _batches(
        chelsea, tmp_path, 2, stored_side, crop_scale=(1.0, 1.0), crop_ratio=(1.5, 1.5),
        flip_prob=0.0,
    )  # fmt: skip
    view = batches.views(0)[0][0]
    whole = torch.from_numpy(batches.images.pixels(0).copy()).permute(2, 0, 1)
    assert whole.shape[1:] == (64, 96)
    expected = TF.resized_crop(whole, 0, 0, 64, 96, [32, 32], antialias=True).float() / 255
    torch.testing.assert_close(view, expected, atol=1e-6, rtol=0)


def test_views_are_torchvisions_resized_crop_of_each_whole_image(
    photos: list[Path], tmp_path: Path
) -> None:
    """Random boxes on three stored shapes: each view is torchvision's antialiased
    resized_crop (and flip) of its own image, whatever else is in the batch."""
    batches = _batches(photos, tmp_path, 3, 48, flip_prob=0.5)
    views = batches.views(0)
    local = batches.local_indices(0)
    decoded = batches.images.tensors(local.tolist(), CPU.device)
    ids = local  # epoch 0
    heights = torch.from_numpy(batches.images.heights[local.numpy()])
    widths = torch.from_numpy(batches.images.widths[local.numpy()])
    for k, recipe in enumerate(batches.recipes):
        params = sample_view(recipe, ids, heights, widths, 0, k)
        for row, image in enumerate(decoded):
            top, left, height, width = params.boxes[row].tolist()
            expected = TF.resized_crop(image, top, left, height, width, [32, 32], antialias=True)
            if params.flips[row]:
                expected = TF.horizontal_flip(expected)
            # the minimal preset's jitter and grey are off: the view is the crop itself
            torch.testing.assert_close(views[k][row], expected.float() / 255, atol=1e-6, rtol=0)


def test_every_image_gets_the_same_view_alone_as_in_a_padded_batch(
    photos: list[Path], tmp_path: Path
) -> None:
    """Rotating views take the padded batch: images of other sizes padded beside an image
    change nothing, rotations at the edge included (the padding repeats the image's edge)."""
    together = _batches(photos, tmp_path, 3, 48, rotation=30.0, crop_scale=(0.5, 1.0))
    views = together.views(0)
    order = together.local_indices(0).tolist()
    shapes = {tuple(together.images.pixels(i).shape) for i in range(3)}
    assert len(shapes) == 3  # three different stored shapes in one batch
    for row, index in enumerate(order):
        alone = together.images.tensors([index], CPU.device)
        ids = torch.tensor([index])
        heights = torch.tensor([int(together.images.heights[index])])
        widths = torch.tensor([int(together.images.widths[index])])
        drawn = [
            (sample_view(recipe, ids, heights, widths, 0, k), recipe)
            for k, recipe in enumerate(together.recipes)
        ]
        for view, single in zip(views, cut_views(alone, drawn), strict=True):
            # grid coordinates normalised by another size: float rounding only (a view that
            # read padding would differ by a tenth or more)
            torch.testing.assert_close(view[row], single[0], atol=1e-5, rtol=0)


def test_padding_repeats_the_last_row_and_column() -> None:
    small = torch.arange(2 * 3, dtype=torch.uint8).reshape(1, 2, 3).expand(3, 2, 3)
    large = torch.zeros(3, 4, 5, dtype=torch.uint8)
    batch = padded_batch([small, large])
    assert batch.shape == (2, 3, 4, 5)
    expected = torch.tensor(
        [[0, 1, 2, 2, 2], [3, 4, 5, 5, 5], [3, 4, 5, 5, 5], [3, 4, 5, 5, 5]], dtype=torch.uint8
    )
    assert torch.equal(batch[0, 1], expected)


def test_the_view_sheet_shows_each_image_beside_its_views(
    photos: list[Path], tmp_path: Path
) -> None:
    batches = _batches(photos, tmp_path, 3, 48)
    path = tmp_path / "views.png"
    write_view_sheet(batches, 0, path)
    with Image.open(path) as sheet:
        assert sheet.size == (4 + 3 * (128 + 4), 4 + 3 * (128 + 4))
        pixels = np.asarray(sheet.convert("RGB"))
    views = batches.views(0)
    # the centre of row 0's first view cell is the view's centre pixel, enlarged 4x
    cell = pixels[4 : 4 + 128, 4 + 132 : 4 + 132 + 128]
    shown = torch.from_numpy(cell[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(shown, views[0][0], atol=1 / 255 + 1e-6, rtol=0)
    assert view_sheet([batches.images.pixels(0)], [v[:1] for v in views]).size[1] == 136


def test_views_of_video_frames_split_across_ranks_as_one_process_draws_them() -> None:
    """Frames served by ``FrameImages`` (2 sample videos at 5 fps, 40 frames): the 2 ranks'
    views of each step, put together, are one process's, bit for bit, across an epoch."""
    from types import SimpleNamespace

    from sslcli.data.video import FrameImages, decode_video

    paths = sorted((SAMPLE / "videos" / "bounce").glob("*.mp4"))[:2]
    frames = FrameImages([decode_video(path, 5, 40, keep_aspect=True) for path in paths])
    preset = customise(PRESETS.create("simclr"), {"size": 32}, {})

    def views(world_size: int, rank: int) -> list[list[torch.Tensor]]:
        config = SimpleNamespace(
            seed=0, batch_size=8, per_device_batch=8 // world_size, local_crops=0
        )
        runtime = Runtime(torch.device("cpu"), "fp32", 0, rank=rank, world_size=world_size)
        batches = ViewBatches(frames, config, preset, runtime, steps_per_epoch=5)
        return [batches.views(step) for step in (0, 4, 5, 9)]  # epochs 0 and 1

    one = views(1, 0)
    ranks = [views(2, rank) for rank in (0, 1)]
    for step, drawn in enumerate(one):
        assert len(drawn) == 2 and drawn[0].shape == (8, 3, 32, 32)
        for view, batch in enumerate(drawn):
            shares = torch.cat([ranks[0][step][view], ranks[1][step][view]])
            assert torch.equal(shares, batch), (step, view)
    assert not torch.equal(one[0][0], one[2][0])  # the next epoch draws other views
