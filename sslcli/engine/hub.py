"""Model-hub identifiers: names of the form ``owner/name`` that transformers can load."""

from __future__ import annotations

from pathlib import Path


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` with one slash and nothing on disk by that name."""
    owner, slash, model = name.partition("/")
    return bool(slash and owner and model and "/" not in model and not Path(name).exists())
