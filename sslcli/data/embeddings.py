"""Embedding files: one row per image with its name, in the format the file's suffix names.

- ``.npy``: a float32 (N, D) array, with the names in a sidecar ``NAME.names.json``;
- ``.safetensors``: tensor ``embeddings`` and the names (JSON) in the file's metadata;
- ``.csv``: a ``name`` column then ``e0 .. e{D-1}``;
- ``.parquet``: a ``name`` column and an ``embedding`` list column (needs pyarrow).

Files are written atomically; ``read_embeddings`` reads any of them back.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from sslcli.engine.atomic import atomic_file
from sslcli.errors import usage_error

FORMATS = (".npy", ".safetensors", ".csv", ".parquet")


def check_format(path: Path) -> str:
    """The suffix of ``path`` when it names a known format, else a clear error."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise usage_error(
            f"cannot tell the format of {path}", f"end the file name with {', '.join(FORMATS)}"
        )
    if suffix == ".parquet":
        _pyarrow()
    return suffix


def names_file(path: Path) -> Path:
    """The sidecar holding the row names of a ``.npy`` file."""
    return path.with_name(path.stem + ".names.json")


def write_embeddings(path: Path, names: list[str], embeddings: np.ndarray) -> list[Path]:
    """Write ``embeddings`` (N, D) with one name per row; return the files written."""
    if len(names) != len(embeddings):
        raise ValueError(f"{len(names)} names for {len(embeddings)} rows")
    suffix = check_format(path)
    rows = np.ascontiguousarray(embeddings, dtype=np.float32)
    with atomic_file(path) as temporary:
        _WRITERS[suffix](temporary, names, rows)
    if suffix != ".npy":
        return [path]
    with atomic_file(names_file(path)) as temporary:
        temporary.write_text(json.dumps(names), encoding="utf-8")
    return [path, names_file(path)]


def read_embeddings(path: Path) -> tuple[list[str], np.ndarray]:
    """Names and float32 rows of a file written by :func:`write_embeddings`."""
    suffix = check_format(path)
    if not path.is_file():
        raise usage_error(f"{path} does not exist", "check the path")
    return _READERS[suffix](path)


def _write_npy(target: Path, names: list[str], rows: np.ndarray) -> None:
    with target.open("wb") as handle:
        np.save(handle, rows)


def _read_npy(path: Path) -> tuple[list[str], np.ndarray]:
    sidecar = names_file(path)
    if not sidecar.is_file():
        raise usage_error(f"{sidecar} is missing", "it holds the names of the rows of " + str(path))
    return json.loads(sidecar.read_text(encoding="utf-8")), np.load(path, allow_pickle=False)


def _write_safetensors(target: Path, names: list[str], rows: np.ndarray) -> None:
    from safetensors.numpy import save_file

    save_file({"embeddings": rows}, str(target), metadata={"names": json.dumps(names)})


def _read_safetensors(path: Path) -> tuple[list[str], np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        names = json.loads((handle.metadata() or {}).get("names", "[]"))
        return names, handle.get_tensor("embeddings")


def _write_csv(target: Path, names: list[str], rows: np.ndarray) -> None:
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", *(f"e{i}" for i in range(rows.shape[1]))])
        for name, row in zip(names, rows, strict=True):
            # repr of a float32 round-trips exactly
            writer.writerow([name, *(repr(float(value)) for value in row)])


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        records = list(reader)
    names = [record[0] for record in records]
    return names, np.array([record[1:] for record in records], dtype=np.float32)


def _write_parquet(target: Path, names: list[str], rows: np.ndarray) -> None:
    pa, pq = _pyarrow()
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])
    pq.write_table(pa.table({"name": names, "embedding": embedding}), target)


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    _, pq = _pyarrow()
    table = pq.read_table(path)
    rows = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    return table.column("name").to_pylist(), rows


def _pyarrow() -> tuple:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise usage_error(
            "writing .parquet needs pyarrow", 'pip install "sslcli[parquet]", or use .npy'
        ) from None
    return pa, pq


_WRITERS = {
    ".npy": _write_npy,
    ".safetensors": _write_safetensors,
    ".csv": _write_csv,
    ".parquet": _write_parquet,
}
_READERS = {
    ".npy": _read_npy,
    ".safetensors": _read_safetensors,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
