import numpy as np
import pytest
import torch

from sslcli.errors import SSLError
from sslcli.eval.neighbours import nearest_neighbours


@pytest.mark.parametrize("chunk", [3, 1024])
def test_neighbours_match_a_direct_numpy_computation(chunk: int) -> None:
    features = np.random.default_rng(1).standard_normal((11, 6)).astype(np.float32)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    expected = np.argsort(-similarity, axis=1)[:, :4]
    indices, similarities = nearest_neighbours(torch.from_numpy(features), 4, chunk=chunk)
    np.testing.assert_array_equal(indices.numpy(), expected)
    np.testing.assert_allclose(
        similarities.numpy(), np.take_along_axis(similarity, expected, 1), rtol=1e-5
    )


def test_a_duplicate_is_the_nearest_neighbour_and_k_is_checked() -> None:
    features = torch.randn(5, 8)
    features[3] = features[1] * 2  # the same direction: a duplicate by cosine
    indices, similarities = nearest_neighbours(features, 1)
    assert indices[1, 0] == 3 and indices[3, 0] == 1
    assert similarities[1, 0] == pytest.approx(1.0)
    with pytest.raises(SSLError, match="more neighbours than the 4 other images"):
        nearest_neighbours(features, 5)
