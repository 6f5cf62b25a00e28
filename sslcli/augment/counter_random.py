"""Counter-based random numbers: a pure function of (seed, sample id, stream, draw).

Each sample's parameters depend only on the seed and the sample's id, never on the batch it
is in, the order of the batch or the device, so the same seed gives the same views whatever
the batch size. The hash is murmur3's 32-bit finaliser applied to the mixed counters.
"""

from __future__ import annotations

import torch

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mix(value: torch.Tensor) -> torch.Tensor:
    value = value & _MASK
    value = value ^ (value >> 16)
    value = (value * 0x85EBCA6B) & _MASK
    value = value ^ (value >> 13)
    value = (value * 0xC2B2AE35) & _MASK
    return value ^ (value >> 16)


def uniforms(seed: int, sample_ids: torch.Tensor, stream: int, count: int) -> torch.Tensor:
    """``(len(sample_ids), count)`` float64 uniforms in [0, 1), one row per sample.

    ``stream`` separates independent uses (one per view and parameter kind).
    """
    ids = sample_ids.to(torch.int64).reshape(-1, 1)
    draws = torch.arange(count, device=ids.device, dtype=torch.int64).reshape(1, -1)
    state = _mix(torch.full_like(ids, seed & _MASK) ^ _mix(ids ^ (ids >> 32)))
    state = _mix(state ^ ((stream * _GOLDEN) & _MASK))
    state = _mix(state ^ ((draws + 1) * _GOLDEN))
    return state.to(torch.float64) / float(1 << 32)
