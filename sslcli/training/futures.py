"""The continuation pairs a ``train-latent --pairs future`` step sees: past clips and futures.

Every video is decoded once (``data.video``: frames sampled at the run's rate, each whole
frame squashed to the training size); every anchor of every video (``data.clips``) is one
sample. The global batch at a step is cut from a seeded order of all samples per epoch
(``grouped_order``: runs of moments of one video, so that the batch statistics VICReg's
variance and covariance terms see come from within videos, not only from their differences),
as ``ViewBatches`` cuts it (``RankShare``), so 2 processes x B see exactly what 1 process x 2B
sees and a resumed run what an uninterrupted one saw. The frames are not augmented: the
whole frame, so a future may come in from any edge and a pair's frames stay comparable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from sslcli.data.normalization import normalize
from sslcli.training.views import RankShare

if TYPE_CHECKING:
    from sslcli.data.clips import Continuation
    from sslcli.data.video import Frames
    from sslcli.engine.runtime import Runtime
    from sslcli.training.config import TrainingConfig


def continuation_samples(videos: list[Frames], continuation: Continuation) -> np.ndarray:
    """(N, 2) rows of (video, anchor): every pair of every video, in video then time order."""
    rows = [
        (number, anchor)
        for number, video in enumerate(videos)
        for anchor in continuation.anchors(len(video.pixels))
    ]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


PAIRS_PER_VIDEO = 8
"""The samples of one video that stand together in an epoch's order (fewer where it runs out)."""


def grouped_order(samples: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """An epoch's order of the (video, anchor) ``samples``: each video's rows shuffled and cut
    into runs of ``PAIRS_PER_VIDEO``, then the runs of all videos shuffled together."""
    runs: list[torch.Tensor] = []
    for video in np.unique(samples[:, 0]):
        rows = torch.from_numpy(np.flatnonzero(samples[:, 0] == video))
        runs.extend(rows[torch.randperm(len(rows), generator=generator)].split(PAIRS_PER_VIDEO))
    chosen = torch.randperm(len(runs), generator=generator).tolist()
    return torch.cat([runs[index] for index in chosen])


def frames_batch(frames: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """(B, 3, S, S) floats in [0, 1] of uint8 (S, S, 3) frames."""
    stacked = torch.from_numpy(np.stack(frames)).to(device)
    return stacked.permute(0, 3, 1, 2).float().div_(255)


class FuturePairs:
    """This rank's share of the global batch at a step: K past frames and the future frame."""

    def __init__(
        self,
        videos: list[Frames],
        continuation: Continuation,
        config: TrainingConfig,
        runtime: Runtime,
        steps_per_epoch: int,
    ) -> None:
        self.videos = videos
        self.continuation = continuation
        self.samples = continuation_samples(videos, continuation)
        self.config = config
        self.runtime = runtime
        self.local_indices = RankShare(
            len(self.samples),
            config,
            runtime.rank,
            steps_per_epoch,
            lambda generator: grouped_order(self.samples, generator),
        )
        """The samples (rows of ``samples``) of this rank's share of a step."""

    def views(self, step: int) -> list[torch.Tensor]:
        """The K past frames, oldest first, then the future frame, each (B, 3, S, S) in [0, 1]."""
        rows = self.samples[self.local_indices(step).numpy()].tolist()
        continuation = self.continuation
        frames = [[*continuation.past(anchor), continuation.future(anchor)] for _, anchor in rows]
        return [
            frames_batch(
                [
                    self.videos[video].pixels[f[k]]
                    for (video, _), f in zip(rows, frames, strict=True)
                ],
                self.runtime.device,
            )
            for k in range(continuation.context_frames + 1)
        ]

    def __call__(self, step: int) -> list[torch.Tensor]:
        """[clips (B, K, 3, S, S), futures (B, 3, S, S)], standardised."""
        mean, std = self.config.mean, self.config.std
        frames = [normalize(view, mean, std, in_place=True) for view in self.views(step)]
        return [torch.stack(frames[:-1], dim=1), frames[-1]]

    def local_labels(self, step: int) -> torch.Tensor:
        raise AssertionError("videos have no labels")  # the worker refuses --online-probe

    def originals(self, step: int, count: int) -> list[np.ndarray]:
        """The anchor frame of the first ``count`` pairs (the views sheet's first column)."""
        rows = self.samples[self.local_indices(step)[:count].numpy()]
        return [self.videos[v].pixels[a] for v, a in rows.tolist()]
