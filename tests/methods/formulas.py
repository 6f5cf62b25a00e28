"""The papers' formulas computed directly, one sample at a time in float64, to check the
batched losses against."""

from __future__ import annotations

import math

import torch


def centred_cross_entropy(
    teacher: torch.Tensor, student: torch.Tensor, center: torch.Tensor, tau_t: float, tau_s: float
) -> float:
    """-sum_k P_t_k log P_s_k for one sample's logits: P_t = softmax((teacher - center) /
    tau_t), P_s = softmax(student / tau_s) (DINO's Sec. 3.1, iBOT's Eq. 3)."""
    t = [(a - c) / tau_t for a, c in zip(teacher.tolist(), center.tolist(), strict=True)]
    s = [a / tau_s for a in student.tolist()]
    t_norm = math.log(sum(math.exp(a) for a in t))
    s_norm = math.log(sum(math.exp(a) for a in s))
    return -sum(math.exp(a - t_norm) * (b - s_norm) for a, b in zip(t, s, strict=True))
