"""Parameter distributions match torchvision's transforms; views are reproducible."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T

from sslcli.augment.counter_random import uniforms
from sslcli.augment.recipe import ViewRecipe
from sslcli.augment.views import apply_views, sample_view

DRAWS = 50_000
HEIGHT, WIDTH = 200, 300


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two CDFs."""
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), values, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


# Two samples of 50 000 from one distribution: D exceeds 1.95 * sqrt(2 / 50 000) = 0.0123
# with probability 0.001 (the KS test's critical value; seeds are fixed, so no flakiness).
KS_BOUND = 0.0125


def _ours(recipe: ViewRecipe, seed: int = 0):
    ids = torch.arange(DRAWS)
    sizes = torch.full((DRAWS,), HEIGHT), torch.full((DRAWS,), WIDTH)
    return sample_view(recipe, ids, *sizes, seed=seed, view=0)


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.05, 0.4)])
def test_crop_boxes_follow_torchvision_random_resized_crop(scale: tuple[float, float]) -> None:
    recipe = ViewRecipe(crop_scale=scale)
    boxes = _ours(recipe).boxes.double().numpy()
    torch.manual_seed(0)
    image = torch.empty(3, HEIGHT, WIDTH)
    reference = np.array(
        [T.RandomResizedCrop.get_params(image, list(scale), [3 / 4, 4 / 3]) for _ in range(DRAWS)],
        dtype=np.float64,
    )
    for name, ours, theirs in [
        ("area", boxes[:, 2] * boxes[:, 3], reference[:, 2] * reference[:, 3]),
        ("aspect", boxes[:, 3] / boxes[:, 2], reference[:, 3] / reference[:, 2]),
        (
            "top",
            boxes[:, 0] / (HEIGHT - boxes[:, 2] + 1),
            reference[:, 0] / (HEIGHT - reference[:, 2] + 1),
        ),
        (
            "left",
            boxes[:, 1] / (WIDTH - boxes[:, 3] + 1),
            reference[:, 1] / (WIDTH - reference[:, 3] + 1),
        ),
    ]:
        assert _ks_statistic(ours, theirs) < KS_BOUND, name
    assert (boxes[:, 0] + boxes[:, 2] <= HEIGHT).all() and (
        boxes[:, 1] + boxes[:, 3] <= WIDTH
    ).all()


def test_impossible_crops_fall_back_to_the_central_crop() -> None:
    recipe = ViewRecipe(crop_scale=(1.0, 1.0), crop_ratio=(3.0, 4.0))
    boxes = sample_view(
        recipe, torch.arange(5), torch.full((5,), 100), torch.full((5,), 100), 0, 0
    ).boxes
    expected = T.RandomResizedCrop.get_params(torch.empty(3, 100, 100), [1.0, 1.0], [3.0, 4.0])
    assert boxes.tolist() == [list(expected)] * 5


def test_jitter_factors_and_order_follow_torchvision_color_jitter() -> None:
    strengths = (0.4, 0.3, 0.2, 0.1)
    params = _ours(ViewRecipe(jitter=strengths, jitter_prob=1.0))
    jitter = T.ColorJitter(*strengths)
    torch.manual_seed(0)
    reference = [jitter.make_params([]) for _ in range(DRAWS)]
    names = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
    for column, name in enumerate(names):
        theirs = np.array([draw[name] for draw in reference])
        assert _ks_statistic(params.factors[:, column].numpy(), theirs) < KS_BOUND, name
    # every op is equally likely at every position of the random order
    for position in range(4):
        shares = np.bincount(params.order[:, position].numpy(), minlength=4) / DRAWS
        assert np.abs(shares - 0.25).max() < 0.01


def test_probabilities_of_each_op() -> None:
    recipe = ViewRecipe(
        flip_prob=0.5, jitter_prob=0.8, grayscale_prob=0.2, blur_prob=0.5, solarize_prob=0.1
    )
    params = _ours(recipe)
    for name, flags, p in [
        ("flip", params.flips, 0.5),
        ("jitter", params.jittered, 0.8),
        ("grayscale", params.grayscale, 0.2),
        ("blur", params.blurred, 0.5),
        ("solarize", params.solarized, 0.1),
    ]:
        rate = flags.double().mean().item()
        assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / DRAWS), name
    sigmas = params.sigmas.numpy()
    assert _ks_statistic(sigmas, np.random.default_rng(0).uniform(0.1, 2.0, DRAWS)) < KS_BOUND


def test_rotation_angles_follow_torchvision_random_rotation() -> None:
    angles = _ours(ViewRecipe(rotation=15.0)).angles.numpy()
    torch.manual_seed(0)
    rotate = T.RandomRotation(15.0)
    theirs = np.array([rotate.make_params([])["angle"] for _ in range(DRAWS)])
    assert _ks_statistic(angles, theirs) < KS_BOUND
    assert np.abs(angles).max() <= 15.0
    assert not _ours(ViewRecipe()).angles.any()


def test_streams_are_independent() -> None:
    ids = torch.arange(DRAWS)
    a, b = uniforms(0, ids, 0, 1)[:, 0], uniforms(0, ids, 1, 1)[:, 0]
    assert abs(np.corrcoef(a.numpy(), b.numpy())[0, 1]) < 0.03
    assert not torch.equal(uniforms(0, ids, 0, 1), uniforms(1, ids, 0, 1))


def test_a_view_is_the_same_whatever_the_batch_it_is_in() -> None:
    recipe = ViewRecipe(size=24, blur_prob=0.5, solarize_prob=0.3, rotation=20.0)
    images = torch.rand(6, 3, 40, 50, generator=torch.Generator().manual_seed(1))
    ids = torch.arange(10, 16)
    sizes = torch.full((6,), 40), torch.full((6,), 50)

    def view(part: slice, seed: int = 3, number: int = 1) -> torch.Tensor:
        params = sample_view(recipe, ids[part], sizes[0][part], sizes[1][part], seed, number)
        return apply_views(images[part], [(params, recipe)])[0]

    whole = view(slice(0, 6))
    for start in range(0, 6, 2):
        torch.testing.assert_close(view(slice(start, start + 2)), whole[start : start + 2])
    assert not torch.allclose(view(slice(0, 6), seed=4), whole)


def test_views_applied_together_equal_views_applied_one_by_one() -> None:
    images = torch.rand(5, 3, 30, 30, generator=torch.Generator().manual_seed(2))
    recipes = [ViewRecipe(size=16, blur_prob=1.0), ViewRecipe(size=16, solarize_prob=0.5)]
    recipes.append(ViewRecipe(size=8, crop_scale=(0.05, 0.4)))
    sizes = torch.full((5,), 30), torch.full((5,), 30)
    drawn = [(sample_view(r, torch.arange(5), *sizes, 0, k), r) for k, r in enumerate(recipes)]
    together = apply_views(images, drawn)
    for k, item in enumerate(drawn):
        torch.testing.assert_close(together[k], apply_views(images, [item])[0])
    assert [v.shape[-1] for v in together] == [16, 16, 8]


def test_cpu_chunks_give_the_same_views(monkeypatch: pytest.MonkeyPatch) -> None:
    from sslcli.augment import views as views_module

    recipe = ViewRecipe(size=16, blur_prob=0.5, solarize_prob=0.5)
    images = torch.rand(7, 3, 20, 20, generator=torch.Generator().manual_seed(3))
    sizes = torch.full((7,), 20), torch.full((7,), 20)
    drawn = [(sample_view(recipe, torch.arange(7), *sizes, 0, k), recipe) for k in (0, 1)]
    whole = apply_views(images, drawn)
    monkeypatch.setattr(views_module, "CPU_CHUNK_BYTES", 3 * 16 * 16 * 4 * 3)  # 3 samples
    chunked = apply_views(images, drawn)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b)
