"""Each batched op with per-sample parameters equals torchvision's op applied sample by sample."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

from sslcli.augment import ops

PHOTOS = Path(__file__).resolve().parents[2] / "sample_data" / "photos"


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    images = []
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg"):
        with Image.open(PHOTOS / name) as image:
            images.append(np.asarray(image.convert("RGB").resize((64, 48))))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


FACTORS = torch.tensor([0.3, 1.0, 1.5, 0.8], dtype=torch.float64)
HUES = torch.tensor([-0.5, -0.1, 0.0, 0.37], dtype=torch.float64)


@pytest.mark.parametrize(
    ("ours", "theirs", "values"),
    [
        (ops.adjust_brightness, TF.adjust_brightness, FACTORS),
        (ops.adjust_contrast, TF.adjust_contrast, FACTORS),
        (ops.adjust_saturation, TF.adjust_saturation, FACTORS),
        (ops.adjust_hue, TF.adjust_hue, HUES),
    ],
)
def test_colour_ops_match_torchvision(batch: torch.Tensor, ours, theirs, values) -> None:
    result = ours(batch.clone(), values)
    for index, value in enumerate(values.tolist()):
        torch.testing.assert_close(result[index], theirs(batch[index], value), atol=2e-6, rtol=0)


def test_grayscale_and_solarize_match_torchvision(batch: torch.Tensor) -> None:
    grey, solar = ops.to_grayscale(batch), ops.solarize(batch)
    for index in range(len(batch)):
        expected_grey = TF.rgb_to_grayscale(batch[index], 3)
        torch.testing.assert_close(grey[index], expected_grey, atol=1e-6, rtol=0)
        torch.testing.assert_close(solar[index], TF.solarize(batch[index], 0.5))


def test_blur_matches_torchvision(batch: torch.Tensor) -> None:
    sigmas = torch.tensor([0.1, 0.7, 1.3, 2.0])
    result = ops.gaussian_blur(batch, sigmas, kernel_size=9)
    for index, sigma in enumerate(sigmas.tolist()):
        expected = TF.gaussian_blur(batch[index], [9, 9], [sigma, sigma])
        torch.testing.assert_close(result[index], expected, atol=1e-5, rtol=0)


def test_resized_crop_with_flip_matches_torchvision(batch: torch.Tensor) -> None:
    boxes = torch.tensor([[0, 0, 48, 64], [5, 7, 20, 30], [10, 3, 33, 21], [1, 40, 12, 24]])
    flips = torch.tensor([False, True, False, True])
    result = ops.resized_crop(batch, boxes, flips, size=32)
    for index, (top, left, height, width) in enumerate(boxes.tolist()):
        expected = TF.resized_crop(
            batch[index], top, left, height, width, [32, 32], antialias=False
        )
        if flips[index]:
            expected = TF.horizontal_flip(expected)
        # One resampling step over the whole image: inside the crop the two agree exactly;
        # on the crop's outermost pixels we may read its neighbours where torchvision clamps.
        inner = (slice(None), slice(1, -1), slice(1, -1))
        torch.testing.assert_close(result[index][inner], expected[inner], atol=1e-5, rtol=0)
        assert (result[index] - expected).abs().mean() < 0.02


def test_rotated_crop_matches_torchvision_crop_then_rotate(batch: torch.Tensor) -> None:
    # crops of the output's size, so torchvision resamples once (to rotate), as we do
    boxes = torch.tensor([[8, 16, 24, 24], [0, 0, 24, 24], [24, 40, 24, 24], [10, 10, 24, 24]])
    flips = torch.tensor([False, True, False, True])
    angles = torch.tensor([30.0, -50.0, 90.0, 12.5])
    result = ops.resized_crop(batch, boxes, flips, 24, angles)
    rows, columns = torch.meshgrid(torch.arange(24), torch.arange(24), indexing="ij")
    # torchvision fills what a rotation brings in with 0, we read the image around the crop:
    # compare the disk that stays inside the crop at any angle
    disk = (rows - 11.5) ** 2 + (columns - 11.5) ** 2 < 11**2
    for index, ((top, left, height, width), angle) in enumerate(
        zip(boxes.tolist(), angles.tolist(), strict=True)
    ):
        crop = TF.resized_crop(batch[index], top, left, height, width, [24, 24], antialias=False)
        expected = TF.rotate(crop, angle, interpolation=TF.InterpolationMode.BILINEAR)
        if flips[index]:
            expected = TF.horizontal_flip(expected)
        torch.testing.assert_close(result[index][:, disk], expected[:, disk], atol=1e-5, rtol=0)


def test_a_zero_angle_is_the_unrotated_crop(batch: torch.Tensor) -> None:
    boxes = torch.tensor([[5, 7, 20, 30], [10, 3, 33, 21], [0, 0, 48, 64], [1, 40, 12, 24]])
    flips = torch.tensor([True, False, False, True])
    plain = ops.resized_crop(batch, boxes, flips, 16)
    torch.testing.assert_close(ops.resized_crop(batch, boxes, flips, 16, torch.zeros(4)), plain)
    quarter = ops.resized_crop(batch, boxes[2:3], flips[2:3], 16, torch.tensor([90.0]))
    assert not torch.allclose(quarter, plain[2:3], atol=0.05)


def test_the_matrix_resize_of_crops_is_pytorchs_antialiased_resize() -> None:
    """Off the CPU the crops are resized by matrix products (one per axis, all crops at once):
    the weights are PyTorch's antialiased bilinear ones, shrinking and enlarging, with
    flips, and the uint8 result is within 1 of the CPU's uint8 kernel (which rounds between
    its two passes)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 61, 83), dtype=torch.uint8, generator=generator)
    boxes = torch.tensor(
        [[0, 0, 61, 83], [3, 5, 20, 30], [10, 2, 7, 9], [40, 50, 21, 33], [1, 1, 60, 10]]
    )
    flips = torch.tensor([False, True, False, True, False])
    for size in (16, 40, 96):  # every box shrunk, some of each, every box enlarged
        rows = ops.resize_weights(boxes[:, 0], boxes[:, 2], size, 61)
        columns = ops.resize_weights(boxes[:, 1], boxes[:, 3], size, 83)
        columns = torch.where(flips[:, None, None], columns.flip(1), columns)
        by_matrix = rows[:, None] @ images.float() @ columns[:, None].transpose(-1, -2)
        for crop, (top, left, height, width) in enumerate(boxes.tolist()):
            part = images[crop : crop + 1, :, top : top + height, left : left + width].float()
            direct = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True)[0]
            direct = direct.flip(-1) if flips[crop] else direct
            torch.testing.assert_close(by_matrix[crop], direct, rtol=0, atol=1e-3)
        exact = ops.resized_crops_uint8(list(images), boxes, flips, size)
        matrix = ops.matrix_resized_crops_uint8(images.float(), boxes, flips, size)
        assert matrix.dtype == torch.uint8 and matrix.shape == (5, 3, size, size)
        assert (exact.int() - matrix.int()).abs().max() <= 1
