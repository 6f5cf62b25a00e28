"""The epoch order of video pairs: runs of one video's moments, shuffled together."""

import numpy as np
import torch

from sslcli.training.futures import PAIRS_PER_VIDEO, grouped_order


def test_an_epoch_orders_every_pair_once_in_runs_of_one_video() -> None:
    # 3 videos with 20, 5 and 11 anchors
    samples = np.array([(v, a) for v, n in enumerate((20, 5, 11)) for a in range(n)])
    order = grouped_order(samples, torch.Generator().manual_seed(7))
    assert sorted(order.tolist()) == list(range(len(samples)))
    videos = samples[order.numpy(), 0]
    runs = np.split(videos, np.flatnonzero(np.diff(videos)) + 1)  # maximal same-video runs
    assert all(len(set(run)) == 1 for run in runs)
    # each video's pairs come in runs of PAIRS_PER_VIDEO (its last one shorter): at most
    # ceil(n / 8) stretches of it (two of its runs may stand side by side)
    for video, count in enumerate((20, 5, 11)):
        stretches = sum(1 for run in runs if run[0] == video)
        assert 1 <= stretches <= -(-count // PAIRS_PER_VIDEO)
    again = grouped_order(samples, torch.Generator().manual_seed(7))
    other = grouped_order(samples, torch.Generator().manual_seed(8))
    assert torch.equal(order, again) and not torch.equal(order, other)
