"""Embedding files round-trip in every format, names and values intact."""

from pathlib import Path

import numpy as np
import pytest

from sslcli.data.embeddings import FORMATS, names_file, read_embeddings, write_embeddings
from sslcli.errors import SSLError

NAMES = ["a/1.png", "b, with comma.jpg", 'quote "q".png', "ünï.png"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_format_round_trips_names_and_float32_values_exactly(
    tmp_path: Path, suffix: str
) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    rows = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    rows[0, 0] = np.float32(1e-30)
    path = tmp_path / f"emb{suffix}"
    written = write_embeddings(path, NAMES, rows)
    assert written == ([path, names_file(path)] if suffix == ".npy" else [path])
    names, read = read_embeddings(path)
    assert names == NAMES and read.dtype == np.float32
    np.testing.assert_array_equal(read, rows)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporaries left behind


def test_unknown_suffix_and_missing_sidecar_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="cannot tell the format"):
        write_embeddings(tmp_path / "e.txt", ["x"], np.zeros((1, 2)))
    write_embeddings(tmp_path / "e.npy", ["x"], np.zeros((1, 2)))
    names_file(tmp_path / "e.npy").unlink()
    with pytest.raises(SSLError, match=r"names\.json is missing"):
        read_embeddings(tmp_path / "e.npy")
