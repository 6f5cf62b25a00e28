"""Model-hub identifiers: names of the form ``owner/name`` that transformers can load, told
apart from local paths before anything is fetched, and whether the hub can be asked now."""

from __future__ import annotations

import functools
from pathlib import Path

HUB_TIMEOUT_S = 10.0
"""How long the one request that checks the hub is reachable may take."""


def looks_like_path(name: str) -> bool:
    """Path syntax: a leading ``.``, ``/`` or ``~``, a trailing ``/``, or a first component
    that is a folder here (``runs/digits`` where ``runs/`` exists is a path, not a hub id)."""
    if name.startswith((".", "/", "~")) or name.endswith("/"):
        return True
    first, slash, _ = name.partition("/")
    return bool(slash) and Path(first).is_dir()


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` with one slash, nothing on disk by that name and no path syntax."""
    owner, slash, model = name.partition("/")
    shaped = bool(slash and owner and model and "/" not in model)
    return shaped and not Path(name).exists() and not looks_like_path(name)


@functools.cache
def hub_unreachable(name: str) -> bool:
    """True when the hub must not or cannot be asked: offline mode, or no answer to one
    quick request (no retries: transformers retries a missing network for half a minute)."""
    from huggingface_hub import constants, model_info
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        return True
    try:
        model_info(name, timeout=HUB_TIMEOUT_S)
    except HfHubHTTPError:  # the hub answered (not found, gated, ...): from_pretrained says what
        return False
    except Exception:  # no answer: no network, no name resolution, a timeout
        return True
    return False


def hub_cached(name: str) -> bool:
    """Whether a hub model ``name`` is in the local cache (its ``config.json`` is)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)
