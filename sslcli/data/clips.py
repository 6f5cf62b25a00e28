"""Continuation pairs cut from a video's sampled frames: a past clip x and a future frame y.

Frames are sampled at a fixed rate (``data.video``), so times become frame indices: at an
anchor t (the last frame of the past), x is the ``context_frames`` frames t - K + 1 .. t in
time order and y is frame t + h, h the horizon in frames. A video of T frames has the anchors
K - 1 .. T - 1 - h; a video shorter than K + h frames has none. Training, ``energy`` along a
video and ``sweep --at`` all cut their pairs here, so they agree on what x and y are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sslcli.errors import usage_error

DEFAULT_FPS = 10.0
DEFAULT_HORIZON = 0.5
"""Seconds from the past's last frame to the future frame."""


def horizon_frames(horizon: float, fps: float) -> int:
    """The horizon in frames at ``fps``: a whole number of frame periods, at least one."""
    if fps <= 0:
        raise usage_error(f"--fps must be above 0, got {fps:g}")
    if horizon <= 0:
        raise usage_error(f"--horizon must be above 0 s, got {horizon:g} s")
    frames = horizon * fps
    if not math.isclose(frames, round(frames), abs_tol=1e-6):
        lower = max(1, math.floor(frames)) / fps
        raise usage_error(
            f"--horizon {horizon:g}s is {frames:.3g} frames at --fps {fps:g}: y must be a "
            "sampled frame",
            f"give a multiple of 1/fps = {1 / fps:g}s (e.g. {lower:g}s), or another --fps",
        )
    return round(frames)


@dataclass(frozen=True)
class Continuation:
    """How a run pairs a video's past with its future."""

    context_frames: int
    """K: the frames of x, the newest at the anchor."""
    horizon: int
    """h: frames from the anchor to y."""
    fps: float
    """The rate the frames are sampled at."""

    @property
    def frames_needed(self) -> int:
        """The shortest video with one pair: K + h frames."""
        return self.context_frames + self.horizon

    @property
    def horizon_seconds(self) -> float:
        return self.horizon / self.fps

    def anchors(self, length: int) -> range:
        """Every anchor of a video of ``length`` frames (empty when it is too short)."""
        return range(self.context_frames - 1, length - self.horizon)

    def past(self, anchor: int) -> list[int]:
        """The frames of x at ``anchor``, oldest first."""
        return list(range(anchor - self.context_frames + 1, anchor + 1))

    def future(self, anchor: int) -> int:
        return anchor + self.horizon

    def too_short(self, name: str, length: int) -> str:
        """Why a video of ``length`` frames gives no pair, in one sentence."""
        return (
            f"{name} lasts {length / self.fps:g} s ({length} frames at {self.fps:g} fps), "
            f"shorter than the {self.context_frames} context frame(s) and the "
            f"{self.horizon_seconds:g} s horizon need ({self.frames_needed} frames)"
        )

    def as_dict(self) -> dict[str, float | int]:
        return {"context_frames": self.context_frames, "horizon": self.horizon, "fps": self.fps}
