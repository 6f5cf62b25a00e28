"""The embedding map: PCA to 2-D, thumbnails spread by farthest-point sampling, the picture."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslcli.errors import SSLError
from sslcli.inference.embedding_map import (
    PALETTE,
    THUMBNAIL,
    Projection,
    choose_method,
    class_colours,
    pca,
    spread_points,
    write_embedding_map,
)


def _plane_plus_noise(seed: int = 0) -> tuple[torch.Tensor, np.ndarray, float]:
    """500 embeddings in 32-D: a 2-D plane (std 5 and 3 along two random orthonormal
    directions, off-centre) plus noise of std 0.1 in every dimension; the plane's coordinates
    and the share of the variance it holds."""
    rng = np.random.default_rng(seed)
    plane = rng.normal(size=(500, 2)) * [5.0, 3.0]
    directions = np.linalg.qr(rng.normal(size=(32, 2)))[0]  # (32, 2) orthonormal columns
    noise = rng.normal(scale=0.1, size=(500, 32))
    embeddings = plane @ directions.T + noise + 7.0
    share = (25 + 9) / (25 + 9 + 32 * 0.01)
    return torch.from_numpy(embeddings).float(), plane, share


def test_pca_recovers_a_dominant_plane_and_the_variance_it_explains() -> None:
    embeddings, plane, share = _plane_plus_noise()
    projection = pca(embeddings)
    assert projection.method == "pca" and projection.points.shape == (500, 2)
    assert projection.explained_variance == pytest.approx(share, abs=0.005)
    # component 1 is the plane's long axis, component 2 its short one (up to sign)
    for k in range(2):
        correlation = np.corrcoef(projection.points[:, k], plane[:, k])[0, 1]
        assert abs(correlation) > 0.99, (k, correlation)
    assert projection.points[:, 0].std() > projection.points[:, 1].std()
    assert "PCA" in projection.summary() and f"{100 * share:.0f}" in projection.summary()


def test_pca_signs_follow_the_data_not_the_solver() -> None:
    embeddings, _, _ = _plane_plus_noise(1)
    first, second = pca(embeddings), pca(embeddings)
    np.testing.assert_array_equal(first.points, second.points)
    centred = (embeddings - embeddings.mean(dim=0)).double().numpy()
    loadings = np.linalg.lstsq(centred, first.points, rcond=None)[0]  # (32, 2)
    assert (loadings[np.abs(loadings).argmax(axis=0), [0, 1]] > 0).all()
    for seed in range(5):  # the dimensions in another order: the solver's signs differ
        order = torch.from_numpy(np.random.default_rng(seed).permutation(32))
        np.testing.assert_allclose(pca(embeddings[:, order]).points, first.points, atol=1e-3)


def test_farthest_points_are_spread_and_never_at_one_place() -> None:
    grid = np.array([(x, y) for x in range(10) for y in range(10)], dtype=float)
    corners = {(0.0, 0.0), (0.0, 9.0), (9.0, 0.0), (9.0, 9.0)}
    assert {tuple(grid[i]) for i in spread_points(grid, 4)} == corners
    chosen = spread_points(grid, 16)
    assert len(chosen) == 16 and len({tuple(grid[i]) for i in chosen}) == 16
    gaps = np.linalg.norm(grid[chosen][:, None] - grid[chosen][None], axis=2)
    assert gaps[~np.eye(16, dtype=bool)].min() >= 2  # spread: no two chosen neighbours
    three_places = np.repeat([[0.0, 0.0], [1.0, 5.0], [4.0, 2.0]], 7, axis=0)
    chosen = spread_points(three_places, 16)
    assert len({tuple(three_places[i]) for i in chosen}) == len(chosen) == 3
    assert spread_points(grid, 4) == spread_points(grid, 4)


def test_every_class_gets_its_own_colour() -> None:
    assert class_colours(4) == list(PALETTE[:4])
    for count in (10, 25):
        assert len(set(class_colours(count))) == count


def test_the_picture_has_points_thumbnails_legend_and_title(tmp_path: Path) -> None:
    points = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [10.0, 5.0], [5.0, 2.5]])
    greys = np.array([40, 80, 120, 160, 200], dtype=np.uint8)
    pixels = np.broadcast_to(greys[:, None, None, None], (5, 8, 8, 3)).copy()
    labels = ["cat", "dog", "cat", "emu", "dog"]
    projection = Projection(points, "pca", 0.75)
    path = tmp_path / "map.png"
    layout = write_embedding_map(path, projection, pixels, labels, "tiny-cnn, backbone space")
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert picture.shape[:2] == layout.size[::-1]
    assert [name for name, _ in layout.legend] == ["cat", "dog", "emu"]
    for (_, (left, top, right, bottom)), colour in zip(layout.legend, PALETTE, strict=False):
        assert (picture[top:bottom, left:right] == colour).all()
    left, top, right, bottom = layout.plot
    assert right - left == 640 and bottom - top < 640  # both axes at one scale: wider than tall
    inside = picture[top:bottom, left:right].reshape(-1, 3)
    for grey in greys:  # every image's thumbnail (5 points, all apart, up to 16 shown)
        assert (inside == grey).all(axis=1).sum() >= (THUMBNAIL - 4) ** 2, grey
    title = picture[layout.title[1] : layout.title[3], layout.title[0] : layout.title[2]]
    assert (title.min(axis=2) < 100).any()  # the title's ink
    assert "75.0%" in " ".join(layout.title_lines) and "tiny-cnn" in layout.title_lines[0]


def test_one_colour_and_no_legend_without_classes(tmp_path: Path) -> None:
    points = np.random.default_rng(0).normal(size=(30, 2))
    pixels = np.zeros((30, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "map.png"
    layout = write_embedding_map(path, Projection(points, "umap"), pixels, None, "model")
    picture = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    assert layout.legend == [] and layout.title_lines == ["model: UMAP"]
    assert (picture == PALETTE[0]).all(axis=1).any()
    others = [colour for colour in PALETTE[1:] if len(set(colour)) > 1]  # not tab10's grey
    assert not any((picture == colour).all(axis=1).any() for colour in others)


def test_the_method_umap_when_installed_pca_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_method("pca") == "pca"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert choose_method("auto") == "pca"
    with pytest.raises(SSLError, match="needs the umap-learn package") as refused:
        choose_method("umap")
    assert "pip install umap-learn" in refused.value.hint
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert choose_method("auto") == choose_method("umap") == "umap"
    with pytest.raises(SSLError, match="--map-method must be auto, pca or umap, got tsne"):
        choose_method("tsne")
