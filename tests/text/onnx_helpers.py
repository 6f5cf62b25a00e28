"""Shared by the ONNX fast-path tests: one cache folder a session, and result comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sslcli.text.fill_mask import FillResult, MaskFiller

SCORE_TOLERANCE = 1e-4
"""How far the ONNX path's scores may lie from torch's (the issue's bound)."""


@dataclass
class FirstUse:
    """The embedded model's fast path, asked for the first time in a session."""

    filler: MaskFiller
    notes: list[str]
    """What the command line printed while the ONNX copy was made."""


def shared_cache_home(factory: pytest.TempPathFactory) -> Path:
    """``$XDG_CACHE_HOME`` for the whole session: ONNX copies are made once, not per test."""
    return factory.getbasetemp() / "xdg-cache"


def assert_same_results(ours: list[FillResult], reference: list[FillResult]) -> None:
    """The same guesses (ids and tokens, in order), joint fill and window; scores within
    :data:`SCORE_TOLERANCE`."""
    assert len(ours) == len(reference)
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine.text == theirs.text and mine.truncated == theirs.truncated
        assert mine.filled == theirs.filled and mine.filled_tokens == theirs.filled_tokens
        assert abs(mine.filled_score - theirs.filled_score) <= SCORE_TOLERANCE
        assert len(mine.guesses) == len(theirs.guesses)
        for guesses, expected in zip(mine.guesses, theirs.guesses, strict=True):
            assert [(g.token_id, g.token) for g in guesses] == [
                (g.token_id, g.token) for g in expected
            ]
            for guess, other in zip(guesses, expected, strict=True):
                assert abs(guess.score - other.score) <= SCORE_TOLERANCE


def read_metadata(path: Path) -> dict[str, str]:
    """The key-value metadata of an ONNX file, read without its weights."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}
