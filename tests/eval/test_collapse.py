import math

import pytest
import torch

from sslcli.eval.collapse import CollapseMonitor, effective_rank, embedding_std


def test_metrics_on_spread_and_collapsed_embeddings() -> None:
    spread = torch.randn(512, 16, generator=torch.Generator().manual_seed(0))
    assert embedding_std(spread) == pytest.approx(1 / math.sqrt(16), rel=0.1)
    assert effective_rank(spread) > 14
    point = torch.ones(512, 16) + 1e-6 * spread
    assert embedding_std(point) < 1e-4
    line = torch.outer(torch.randn(512), torch.randn(16))
    assert effective_rank(line) == pytest.approx(1.0, abs=0.05)


def test_monitor_warns_once_after_patience_and_rearms_after_recovery() -> None:
    monitor = CollapseMonitor(patience=2)
    healthy, collapsed = (0.25, 12.0), (0.001, 1.0)
    assert monitor.check(*healthy, 256, 16) is None
    assert monitor.check(*collapsed, 256, 16) is None
    warning = monitor.check(*collapsed, 256, 16)
    assert warning is not None and "collapsing" in warning and "learning rate" in warning
    assert monitor.check(*collapsed, 256, 16) is None  # once per episode
    assert monitor.check(*healthy, 256, 16) is None
    monitor.check(*collapsed, 256, 16)
    assert monitor.check(*collapsed, 256, 16) is not None
