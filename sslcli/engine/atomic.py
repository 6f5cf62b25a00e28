"""Write files and folders so that a kill at any moment leaves the old version or the new one.

Everything is written under a temporary name beside the target, flushed to disk, then
renamed into place (a rename within one filesystem is atomic).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _temporary_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            _fsync_path(path)
    _fsync_path(folder)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target)
    try:
        yield temporary
        _fsync_path(temporary)
        os.replace(temporary, target)
        _fsync_path(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_file(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it takes ``target``'s place.

    An existing ``target`` is moved aside first and deleted only after the new folder is in
    place; a kill between those two renames leaves the old folder under a temporary name
    beside it. Checkpoints avoid even that by never reusing a folder name.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target)
    temporary.mkdir()
    try:
        yield temporary
        _fsync_tree(temporary)
        previous = _temporary_sibling(target) if target.exists() else None
        if previous is not None:
            os.rename(target, previous)
        os.rename(temporary, target)
        _fsync_path(target.parent)
        if previous is not None:
            shutil.rmtree(previous)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_failure(path: Path, error: OSError) -> str:
    """What went wrong writing ``path``, in words: "disk full at PATH" when it was that."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"disk full at {path}"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"cannot write {path} ({reason})"
